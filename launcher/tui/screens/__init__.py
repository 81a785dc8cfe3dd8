"""Screens of the Berth app: browse, plan, launch, chat (and completion / fill-mask), help and modals."""
