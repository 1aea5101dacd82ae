"""Phase-aware synthetic CT: HU table, procedural phantom, label-driven synthesis, phase simulation."""
