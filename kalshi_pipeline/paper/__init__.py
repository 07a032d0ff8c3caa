"""Paper trading: a model follows a live session and is scored as it goes.

The trader (:mod:`.trader`) feeds a session's rows, as the collector commits them, to the
live path of the views (:mod:`kalshi_pipeline.market.streaming`) and plays each market in
the env (:mod:`.episodes`); :mod:`.backtest` plays the session's batch views the same way,
and :mod:`.records` compares the two. Orders are only ever simulated. docs/paper-trading.md
has the whole of it.
"""
