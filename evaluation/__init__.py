"""What a training shows of itself: listening samples and loss curves, in every result."""
