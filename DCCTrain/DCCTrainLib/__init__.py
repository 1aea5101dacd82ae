"""Logic of the DCCTrain module. Shares the engine runner, organ table and installer with DCCSegmentLib.

``slicer_plots`` and ``train_panel`` need Slicer and are imported lazily by the module's widget.
"""
