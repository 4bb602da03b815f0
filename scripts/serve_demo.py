"""`make serve-demo`: the server with its web page on this machine, ready for the bundled
example. Prints the page's URL, a fresh token to sign in with, and the example archive to
upload as "Dataset" (choose model_version `debug` to train offline in about a minute)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from make_example_dataset import write_dataset  # noqa: E402

DEMO_DIR = ROOT / "demo"


def main() -> int:
    dataset = write_dataset(DEMO_DIR / "example_dataset.zip")
    port = os.environ.get("PORT", "8000")
    token = os.environ.get("MUSICGEN_FT_TOKENS") or secrets.token_urlsafe(24)
    print(f"page   : http://127.0.0.1:{port}/")
    print(f"token  : {token}")
    print(f"dataset: {dataset}  (model_version debug trains offline)")
    print("stop with Ctrl-C; state in demo/serve.db", flush=True)
    env = {**os.environ, "MUSICGEN_FT_TOKENS": token, "HF_HUB_OFFLINE": "1"}
    argv = [
        str(Path(sys.executable).parent / "musicgen-ft"), "serve", "--port", port,
        "--db", str(DEMO_DIR / "serve.db"),
    ]  # fmt: skip
    os.execve(argv[0], argv, env)


if __name__ == "__main__":
    sys.exit(main())
