"""twisted_lab tests (run with: python -m twisted.trial tests)."""
