"""The episode loop (``episode``) every mode runs, its control-rate keeper (``rate``), and record mode
(``record``): the loop with a LeRobot-dataset sink.
"""
