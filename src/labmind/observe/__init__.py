"""Ways to watch a lab: terminal views now; dashboard and reports build on the same store."""
