"""Face detection and recognition building blocks (dlib and MediaPipe, all offline)."""
