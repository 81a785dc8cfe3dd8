"""The Textual app: browse what fits, read the plan, launch, and chat. Only this package imports textual.

Build it with `launcher.tui.app.build_app`; the CLI imports this package lazily (`berth`, `berth tui`).
"""
