"""Live training curves in Slicer Plots (table + plot series + chart nodes); needs Slicer."""

from __future__ import annotations

import slicer
import vtk

CURVES = (("train_loss", "train loss", (0.85, 0.33, 0.1)), ("val_dice_mean", "validation mean Dice", (0.1, 0.45, 0.8)))


class MetricsPlot:
    """One chart with a train-loss and a validation-Dice curve, rebuilt from metrics records."""

    def __init__(self, title: str) -> None:
        scene = slicer.mrmlScene
        self.chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(f"{title} chart"))
        self.chart.SetTitle(title)
        self.chart.SetXAxisTitle("epoch (all stages in order)")
        self.chart.SetYAxisTitle("loss / Dice")
        self.tables = {}
        for key, label, color in CURVES:
            table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", scene.GenerateUniqueName(f"{title} {label}"))
            for column in ("epoch", label):
                array = vtk.vtkDoubleArray()
                array.SetName(column)
                table_node.GetTable().AddColumn(array)
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", label)
            series.SetAndObserveTableNodeID(table_node.GetID())
            series.SetXColumnName("epoch")
            series.SetYColumnName(label)
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            series.SetColor(*color)
            self.chart.AddAndObservePlotSeriesNodeID(series.GetID())
            self.tables[key] = table_node

    def update(self, points_by_key: dict[str, list[tuple[int, float]]]) -> None:
        """Replace each curve's points, e.g. ``{"train_loss": [(1, 0.9), ...]}``."""
        for key, table_node in self.tables.items():
            points = points_by_key.get(key, [])
            table = table_node.GetTable()
            table.SetNumberOfRows(len(points))
            for row, (x, y) in enumerate(points):
                table.SetValue(row, 0, x)
                table.SetValue(row, 1, y)
            table.Modified()
            table_node.Modified()
        self.chart.Modified()

    def show(self) -> None:
        slicer.modules.plots.logic().ShowChartInLayout(self.chart)
