"""The optimiser: searches over a strategy's parameters (grid, random, tpe), each trial a backtest
over the train window (and, for the ranking's record, over the held-out test window), the trials
evaluated in chunks by every replica's workers (tradebot.runtime.optimization_worker).

Nothing is re-exported: import from the modules.
"""
