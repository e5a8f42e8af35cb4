"""xfv: eXplainable Face Verification (C-Scores and X-Maps for any face-verification model)."""

__version__ = "0.1.0"
