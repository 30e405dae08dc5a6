"""HTTP: litestar controllers that translate requests into commands and queries, and answers into JSON."""
