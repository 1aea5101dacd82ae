"""dccseg: multi-phase abdominal CT organ segmentation engine (DCC-CL coarse-to-fine).

The engine never imports 3D Slicer; the Slicer modules run it as a background process.
"""

__version__ = "0.1.0"
