"""Report: figure helpers (plots), the claim record (claim), results.json and index.html (html)."""
