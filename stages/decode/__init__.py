"""From a trained model to text: search (greedy and beam), translation of files in
length-sorted batches, and scoring with sacreBLEU.
"""
