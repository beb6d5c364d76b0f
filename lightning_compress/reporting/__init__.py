"""Result tables and plots."""

from lightning_compress.reporting.summary import FitSummary, print_fit_summary, summarize_fit

__all__ = ["FitSummary", "print_fit_summary", "summarize_fit"]
