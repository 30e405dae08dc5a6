"""The newsroom's domain: events, how they fold into state, and the checks commands must pass.

Pure Python: nothing here knows HTTP, SQL or the clock.
"""
