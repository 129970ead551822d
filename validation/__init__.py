"""Validation scripts: the papers' claims (``claims.md``) measured with gn_theory; see README.md."""
