"""Figures and the self-contained HTML report over prediction records."""

from .figures import RenderedFigure, render_figures, save_all_figures
from .html import ReportResult, build_report, render_html
from .provenance import Provenance, collect_provenance

__all__ = ["Provenance", "RenderedFigure", "ReportResult", "build_report",
           "collect_provenance", "render_figures", "render_html", "save_all_figures"]
