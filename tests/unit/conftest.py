"""Unit tier: pure functions and models; nothing outside ``tmp_path`` is touched."""
