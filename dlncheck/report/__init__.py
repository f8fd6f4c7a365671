"""Report: figure helpers (plots), the claim record (claim), the pytest collector (collector),
findings about the golden path (findings), rendering (html, fmt, templates/), run provenance
(provenance), run history (history) and the reports folder's consistency (store)."""
