"""PNG plots of a run: the training history and attention heat maps (matplotlib, optional).
"""
