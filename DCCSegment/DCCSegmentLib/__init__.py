"""Logic of the DCCSegment module: everything that does not need Slicer's classes lives here.

Files that import ``slicer``/``qt``/``vtk`` (``slicer_io``, ``segment_panel``, ``install``'s Slicer part)
import them inside functions, so that the rest is testable with plain pytest.
"""
