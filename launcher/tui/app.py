"""The Berth app and its factory: everything it talks to comes in through `build_app`.

Tests build it with a fixed HostSnapshot, the real planner and `launcher.tui.fake`; the CLI builds it with
this machine's probe, the real loader and the chat store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.screen import Screen

from launcher.machine.host import HostSnapshot
from launcher.plan.emit import python_snippet
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.gguf import GgufWeights
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan, PlanRequest
from launcher.run.runtime import entry_gguf, gguf_entries
from launcher.run.session import GenerationSettings
from launcher.tui.backend import (
    ChatRecord,
    ChatStore,
    HardwareResolver,
    InitialLaunch,
    Launched,
    Planner,
    SessionFactory,
)
from launcher.tui.berth_app import APP_BINDINGS, BerthAppApi
from launcher.tui.commands import ModelCommands
from launcher.tui.rows import alternatives
from launcher.tui.widgets.plan_view import PlanDetails
from registry.catalog import Catalog
from registry.schema import ModelCard


class BerthApp(App[None]):
    """Browse what fits, read a plan, launch a model, and chat with it."""

    CSS_PATH = "app.tcss"
    TITLE = "Berth"
    SUB_TITLE = "which open LLMs fit this machine"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (150, "-wide")]  # noqa: RUF012 (Textual declares it so)
    COMMANDS = App.COMMANDS | {ModelCommands}
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS

    def __init__(
        self,
        catalog: Catalog,
        host: HostSnapshot,
        *,
        planner: Planner,
        session_factory: SessionFactory | None,
        store: ChatStore | None,
        hardware_resolver: HardwareResolver | None,
        this_machine: HostSnapshot | None = None,
        context: int | None = None,
        on_ready: Callable[[BerthApp], None] | None = None,
        initial_launch: InitialLaunch | None = None,
        demo: bool = False,
    ) -> None:
        super().__init__()
        self.catalog = catalog
        self.this_machine = this_machine
        """This computer's snapshot (None until probed when the app started on named hardware)."""
        self.host = host
        self.planner = planner
        self.session_factory = session_factory
        self.store = store
        self.hardware_resolver = hardware_resolver
        self.request = PlanRequest(context=context)
        self.on_ready_hook = on_ready
        self.launched: Launched | None = None
        self.live_chat: ChatRecord | None = None
        """The loaded model's conversation as last shown (Browse's `c` and the Chats list resume it)."""
        self.initial_launch = initial_launch
        self.demo = demo
        self.default_settings = initial_launch.settings if initial_launch else GenerationSettings()
        self.default_system = initial_launch.system_prompt if initial_launch else ""
        self._ready_sent = False
        self.launched_card: ModelCard | None = None
        self._speeds: dict[tuple[str, str], float | None] = {}

    # ------------------------------------------------------------------ life cycle

    def on_mount(self) -> None:
        from launcher.tui.screens.browse import BrowseScreen

        self.push_screen(BrowseScreen())
        if self.demo:
            self.title = "Berth demo (a fake model; chats are not kept)"
        if self.initial_launch is not None:
            from launcher.tui.screens.launch import LaunchScreen

            start = self.initial_launch
            self.push_screen(LaunchScreen(start.card, start.plan, auto_start=True))

    def browse_ready(self) -> None:
        """Called by Browse once its first table is on screen (the startup bench waits for this)."""
        if self._ready_sent:
            return
        self._ready_sent = True
        if self.on_ready_hook is not None:
            self.on_ready_hook(self)

    def on_unmount(self) -> None:
        self.unload()

    # ------------------------------------------------------------------ planning

    def context_for(self, card: ModelCard) -> PlanRequest:
        """The app's request with the context capped at this model's maximum (as `berth list` does)."""
        context = self.request.context
        if context is not None and context > card.context_length:
            return replace(self.request, context=card.context_length)
        return self.request

    def plan_details(self, card: ModelCard, request: PlanRequest | None = None) -> PlanDetails:
        """The full plan for one model (with ways out when it does not fit), alternatives and the snippet."""
        request = self.runtime_request(card, request or self.context_for(card))
        try:
            result = self.planner(card, self.host, request, self.catalog.accelerators, explain=True)
        except PlanRequestError:
            request = self.context_for(card)
            result = self.planner(card, self.host, request, self.catalog.accelerators, explain=True)
        alts = alternatives(card, self.host, replace(request, dtype=None, quant=None), self.planner)
        return PlanDetails(
            card=card,
            host=self.host,
            result=result,
            alternatives=tuple(alts),
            snippet=python_snippet(card, result) if isinstance(result, Plan) else None,
            measured_tokens_per_s=self.measured_speed(card.id),
        )

    def runtime_request(self, card: ModelCard, request: PlanRequest) -> PlanRequest:
        """For an entry made from a local GGUF file, the request with the file's tensors, so the plan shown is
        the llama.cpp plan a launch runs (as `berth plan` does); other entries, an entry on the Hub, or a file
        moved or unreadable (the launch will say so): unchanged."""
        weights = entry_gguf(card) if request.gguf is None else None
        return request if weights is None else replace(request, gguf=weights)

    def gguf_files(self) -> dict[str, GgufWeights]:
        """The tensor tables of the local GGUF files catalog entries run from, by id: Browse plans those rows
        for llama.cpp with them, as the Plan screen (`runtime_request`) and a launch do."""
        return gguf_entries(self.catalog.models)

    def measured_speed(self, model_id: str) -> float | None:
        """Decode tokens/s measured for a model on the current host, if the store has one (cached)."""
        if self.store is None:
            return None
        key = (model_id, self.host.label)
        if key not in self._speeds:
            self._speeds[key] = self.store.measured_speed(model_id, self.host.label)
        return self._speeds[key]

    def forget_measurements(self) -> None:
        """Read measured speeds from the store again (after a session has run)."""
        self._speeds.clear()

    def set_host(self, host: HostSnapshot) -> None:
        """Plan for another machine from now on; Browse re-plans."""
        self.host = host
        self._replan()

    def set_context(self, context: int | None) -> None:
        """Plan for another context length from now on; Browse re-plans."""
        if context == self.request.context:
            return
        self.request = replace(self.request, context=context)
        self._replan()

    def _replan(self) -> None:
        from launcher.tui.screens.browse import BrowseScreen
        from launcher.tui.screens.hub import HubScreen

        for screen in self.screen_stack:
            if isinstance(screen, (BrowseScreen, HubScreen)):
                screen.replan()

    def switch_hardware(self, spec: str | None) -> None:
        """Plan for the hardware a spec names (the hardware switcher's answer; None: keep the current one)."""
        if spec is None:
            return
        try:
            host = self.resolve_hardware(spec)
        except Exception as error:  # the resolver's errors carry their message for people
            self.notify(f"Cannot use '{spec}': {error}", severity="error", timeout=8)
            return
        self.set_host(host)

    def resolve_hardware(self, spec: str) -> HostSnapshot:
        """A HostSnapshot for a spec; '' is this machine. Raises the resolver's error for a bad spec."""
        if self.hardware_resolver is None:
            raise PlanRequestError("no hardware resolver was given to the app")
        if not spec.strip() or spec.strip().lower() in ("this machine", "this", "here"):
            if self.this_machine is None:
                self.this_machine = self.hardware_resolver("")
            return self.this_machine
        return self.hardware_resolver(spec.strip())

    # ------------------------------------------------------------------ launching and sessions

    def open_plan(self, card: ModelCard) -> None:
        """Show the Plan screen for a model."""
        from launcher.tui.screens.plan import PlanScreen

        self.push_screen(PlanScreen(card))

    def launch(self, card: ModelCard, result: Plan | DoesNotFitError) -> None:
        """Start loading a model as planned (on the Launch screen)."""
        from launcher.tui.screens.launch import LaunchScreen

        if isinstance(result, DoesNotFitError):
            self.notify(f"{card.id} does not fit on {self.host.label}.", severity="warning")
            return
        if self.this_machine is None or self.host is not self.this_machine:
            self.notify(
                f"The plan is for {self.host.label}; launching runs on this machine. "
                "Switch hardware back to 'this machine' (h) to launch.",
                severity="warning",
                timeout=6,
            )
            return
        if self.session_factory is None:
            self.notify(
                "Launching needs the loader (launcher.run.load), which this installation lacks.",
                severity="error",
            )
            return
        if self._is_loaded(card, result):  # already loaded as planned: back to its chat, not a second load
            self.resume_session()
            return
        self.unload()
        self.push_screen(LaunchScreen(card, result))

    def _is_loaded(self, card: ModelCard, plan: Plan) -> bool:
        """Whether `card` is the loaded model, loaded with this plan."""
        live, live_card = self.launched, self.launched_card
        return live is not None and live_card is not None and live_card.id == card.id and live.plan == plan

    def start_session(self, launched: Launched, card: ModelCard, typed: str = "", send: bool = False) -> None:
        """Open the screen that fits the model's task, replacing the Launch screen; `typed` (keys pressed while
        it loaded) goes into the prompt, and is sent at once when `send`."""
        self.launched = launched
        self.live_chat = None
        self.pop_screen()
        self.push_screen(self.session_screen(card, launched, self._new_chat(card), typed=typed, send=send))

    def _new_chat(self, card: ModelCard) -> ChatRecord:
        """An empty conversation with the settings this app was started with."""
        return ChatRecord(
            model_id=card.id,
            messages=(),
            settings=self.default_settings,
            system_prompt=self.default_system,
            task=card.task,
        )

    def remember_live_chat(self, record: ChatRecord) -> None:
        """The loaded model's chat as it stands (kept while the person browses)."""
        if self.launched is not None and record.model_id == self.launched.session.model_id:
            self.live_chat = record

    def resume_session(self) -> None:
        """Back to the loaded model's live chat (from Browse, a plan, anywhere)."""
        launched, card = self.launched, self.launched_card
        if launched is None or card is None:
            self.notify("No model is loaded: l launches the highlighted one.", timeout=4)
            return
        self.back_to_browse()
        self.push_screen(self.session_screen(card, launched, self.live_chat or self._new_chat(card)))

    def session_screen(
        self,
        card: ModelCard,
        launched: Launched,
        record: ChatRecord | None = None,
        typed: str = "",
        send: bool = False,
    ) -> Screen:
        """Chat, completion or fill-mask screen for a loaded model."""
        from launcher.tui.screens.chat import ChatScreen, CompletionScreen
        from launcher.tui.screens.fill_mask import FillMaskScreen

        self.launched_card = card
        if card.task == "fill-mask":
            return FillMaskScreen(card, launched)
        if card.task == "completion":
            return CompletionScreen(card, launched, record=record, typed=typed, send=send)
        return ChatScreen(card, launched, record=record, typed=typed, send=send)

    def unload(self) -> None:
        """Free the loaded model, if any."""
        self.live_chat = None
        if self.launched is not None:
            self.launched_card = None
            launched, self.launched = self.launched, None
            launched.session.close()

    def back_to_browse(self) -> None:
        """Pop every screen above Browse."""
        from launcher.tui.screens.browse import BrowseScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, BrowseScreen):
            self.pop_screen()

    def open_chat_record(self, chat_id: str) -> None:
        """Reopen a saved chat: continue it if its model is loaded, else show it read-only."""
        from launcher.tui.screens.chat import ChatScreen, CompletionScreen

        if self.store is None:
            return
        try:
            record = self.store.load_chat(chat_id)
        except KeyError:
            self.notify("That chat is gone.", severity="warning")
            return
        launched, live_card = self.launched, self.launched_card
        if launched is not None and live_card is not None and launched.session.model_id == record.model_id:
            self.back_to_browse()
            self.push_screen(self.session_screen(live_card, launched, record))
            return
        try:
            card: ModelCard | None = self.catalog.get(record.model_id)
        except Exception:
            card = None
        screen_class = CompletionScreen if card is not None and card.task == "completion" else ChatScreen
        self.push_screen(screen_class(card, None, record=record))

    def export_chat(self, record: ChatRecord, fmt: str) -> Path:
        """Write a chat as Markdown ('md') or JSON ('json') under the data folder; returns the file."""
        from launcher.tui.transcript import to_json, to_markdown
        from registry.userdirs import data_dir

        folder = data_dir() / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        name = record.id or "chat"
        path = folder / f"{name}.{fmt}"
        path.write_text(to_markdown(record) if fmt == "md" else to_json(record), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ keys and palette

    def action_help(self) -> None:
        """Show every key."""
        from launcher.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_chats(self) -> None:
        """List saved chats."""
        from launcher.tui.screens.chats import ChatsScreen

        if self.store is None:
            self.notify("No chat store is configured.", severity="warning")
            return
        self.push_screen(ChatsScreen(self.store), self._chat_chosen)

    def _chat_chosen(self, chat_id: str | None) -> None:
        if chat_id:
            self.open_chat_record(chat_id)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: the main actions of the current screen, then Textual's own."""
        commands: Sequence[tuple[str, str, Callable[[], object]]] = getattr(
            screen, "palette_commands", list
        )()
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        yield SystemCommand("Help: every key", "Keys of every screen", self.action_help)
        if self.store is not None:
            yield SystemCommand("Past chats", "Reopen or export a saved conversation", self.action_chats)
        yield from super().get_system_commands(screen)


def build_app(
    catalog: Catalog,
    host: HostSnapshot,
    *,
    planner: Planner = make_plan,
    session_factory: SessionFactory | None = None,
    store: ChatStore | None = None,
    hardware_resolver: HardwareResolver | None = None,
    host_is_this_machine: bool = True,
    context: int | None = None,
    on_ready: Callable[[BerthApp], None] | None = None,
    initial_launch: InitialLaunch | None = None,
    demo: bool = False,
) -> BerthApp:
    """The app, wired to what it needs: a catalog, a host snapshot, a planner, a session factory, a store.

    `host` is what the table is planned for at start. Launching is allowed only while planning for the
    computer the app runs on: with `host_is_this_machine=False` (the app started on named hardware) that
    computer is probed through the hardware resolver (spec '') when the person switches to it.
    `initial_launch` opens the app on that model's Launch screen, then its chat (`berth launch MODEL`)."""
    return BerthApp(
        catalog,
        host,
        planner=planner,
        session_factory=session_factory,
        store=store,
        hardware_resolver=hardware_resolver,
        this_machine=host if host_is_this_machine else None,
        context=context,
        on_ready=on_ready,
        initial_launch=initial_launch,
        demo=demo,
    )


def _conforms(app: BerthApp) -> BerthAppApi:
    """Type check only: the app is what its screens are typed against."""
    return app
