"""A local stand-in of the Hugging Face Hub's file API, on 127.0.0.1, for download tests.

It serves folders `root/<repo_id>/` at one commit through the endpoints `huggingface_hub`
uses: `GET /api/models/<repo>[/revision/<rev>]` (with per-file `blobId` and, for LFS files,
`lfs.sha256`) and `HEAD`/`GET /<repo>/resolve/<rev>/<file>` with the `X-Repo-Commit`, `ETag` /
`X-Linked-Etag` and size headers. `tamper` names files served with other bytes than the ones
whose checksums are published, to prove that downloads are verified; `commit` is the commit
`main` resolves to (a test moves it to show that a locked download refuses a moved repository).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".bin", ".safetensors", ".model", ".th", ".onnx")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class HubServer:
    def __init__(self, root: Path, tamper: tuple[str, ...] = ()) -> None:
        self.root = root
        self.tamper = set(tamper)
        self.commit = COMMIT  # what `main` resolves to; a test may move it
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _repo_files(self, repo: str) -> dict[str, Path]:
        base = self.root / repo
        return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append(f"{handler.command} {path}")
        if path.startswith("/api/models/"):
            repo = path[len("/api/models/") :].split("/revision/", 1)[0]
            self._send_json(handler, self._info(repo), body)
            return
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            _, name = rest.split("/", 1)
            files = self._repo_files(repo)
            if name not in files:
                self._send(handler, 404, b"not found", {}, body)
                return
            data = files[name].read_bytes()
            headers = {"X-Repo-Commit": self.commit, "ETag": f'"{git_blob_id(data)}"'}
            if name.endswith(LFS_SUFFIXES):
                headers["X-Linked-Etag"] = f'"{hashlib.sha256(data).hexdigest()}"'
                headers["X-Linked-Size"] = str(len(data))
            if name in self.tamper:
                data = data[::-1] + b"tampered"
            self._send(handler, 200, data, headers, body)
            return
        self._send(handler, 404, b"not found", {}, body)

    def _info(self, repo: str) -> dict[str, object]:
        siblings = []
        for name, path in self._repo_files(repo).items():
            data = path.read_bytes()
            entry: dict[str, object] = {
                "rfilename": name,
                "size": len(data),
                "blobId": git_blob_id(data),
            }
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "size": len(data),
                    "pointerSize": 134,
                }
            siblings.append(entry)
        return {
            "id": repo,
            "modelId": repo,
            "sha": self.commit,
            "siblings": siblings,
            "private": False,
        }

    def _send_json(self, handler: BaseHTTPRequestHandler, data: object, body: bool) -> None:
        payload = json.dumps(data).encode()
        self._send(handler, 200, payload, {"Content-Type": "application/json"}, body)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str],
        body: bool,
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)
