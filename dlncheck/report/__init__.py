"""Report: figure helpers (plots), the claim record (claim), the pytest collector (collector),
findings about the golden path (findings), the report's first screen (answer), rendering (html, fmt, templates/), run provenance
(provenance), run history (history) and the reports folder's consistency (store)."""
