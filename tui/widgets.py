"""What every tab of the console shares: a filtered, sortable table; a form that the node checks; figures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static, TextArea


def human_rate(value: float) -> str:
    value = float(value or 0)
    for unit, size in (("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B/s"


def human_size(value: float) -> str:
    value = float(value or 0)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def human_age(ms: float) -> str:
    seconds = max(0, int(ms // 1000))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


def progress_bar(fraction: float, width: int = 20) -> str:
    fraction = min(1.0, max(0.0, float(fraction or 0)))
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction * 100:5.1f}%"


class FilteredTable(Vertical):
    """A DataTable with a filter box: rows whose text contains the filter are shown, sortable by column.
    Each row may carry a key (set_rows with keys) so that actions know which item the cursor is on."""

    DEFAULT_CSS = """
    FilteredTable { height: 1fr; }
    FilteredTable Input { height: 3; }
    """

    def __init__(self, columns: tuple[str, ...], *, id: str, filter_box: bool = True):
        super().__init__(id=id)
        self.columns = columns
        self.filter_box = filter_box
        self.rows: list[tuple] = []
        self.keys: list[str] = []
        self.sort_column: int | None = None

    def compose(self) -> ComposeResult:
        if self.filter_box:
            yield Input(placeholder="filter", id=f"{self.id}-filter")
        yield DataTable(id=f"{self.id}-table", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*self.columns)

    @property
    def table(self) -> DataTable:
        return self.query_one(DataTable)

    def set_rows(self, rows: list[tuple], keys: list[str] | None = None) -> None:
        self.rows = rows
        self.keys, seen = [], set()
        for i, key in enumerate(keys if keys is not None else [str(r[0]) for r in rows]):
            key = key if key not in seen else f"{key}#{i}"       # two rows may show the same first column
            seen.add(key)
            self.keys.append(key)
        self._render_rows()

    def _render_rows(self) -> None:
        table = self.table
        needle = self.query_one(Input).value.strip().lower() if self.filter_box else ""
        pairs = [(r, k) for r, k in zip(self.rows, self.keys) if not needle or needle in " ".join(map(str, r)).lower()]
        if self.sort_column is not None:
            pairs.sort(key=lambda pair: str(pair[0][self.sort_column]))
        selected = self.selected
        table.clear()
        for row, key in pairs:
            table.add_row(*map(str, row), key=key)
        if selected is not None and selected in {k for _, k in pairs}:
            table.move_cursor(row=table.get_row_index(selected), animate=False)

    @property
    def selected(self) -> str | None:
        """The key of the row under the cursor, or None for an empty table."""
        table = self.table
        if table.row_count == 0:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:          # a cursor past the rows after a refresh shrank them
            return None

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        self._render_rows()

    @on(DataTable.HeaderSelected)
    def _sort(self, event: DataTable.HeaderSelected) -> None:
        self.sort_column = event.column_index
        self._render_rows()


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    label: str
    value: str = ""
    placeholder: str = ""
    locked: bool = False           # shown, not editable (the name of what is edited)
    lines: int = 1                 # more than one: a text area (a mail's body)


Submit = Callable[[dict[str, str]], Awaitable[str | None]]


class FormScreen(ModalScreen[dict[str, str] | None]):
    """A form whose values `submit` sends to the node; an error it returns is shown in the form, which
    stays open with what was typed, so a refused value can be corrected."""

    DEFAULT_CSS = """
    FormScreen { align: center middle; }
    FormScreen > VerticalScroll { width: 100; height: auto; max-height: 90%; border: thick $accent;
                                  background: $surface; padding: 0 1; }
    FormScreen Input { margin-bottom: 1; background: $panel-lighten-1; }
    FormScreen #form-error { color: $error; margin-top: 1; }
    FormScreen Horizontal { height: 3; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: list[Field], submit: Submit):
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.submit = submit

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(f"[b]{self.title_text}[/b]")
            for f in self.fields:
                yield Label(f.label, classes="field")
                if f.lines > 1:
                    area = TextArea(f.value, id=f"field-{f.key}", disabled=f.locked)
                    area.styles.height = f.lines + 2
                    yield area
                else:
                    yield Input(value=f.value, placeholder=f.placeholder, id=f"field-{f.key}", disabled=f.locked,
                                compact=True)
            yield Static("", id="form-error")
            with Horizontal():
                yield Button("OK", variant="primary", id="form-ok")
                yield Button("Cancel", id="form-cancel")

    def on_mount(self) -> None:
        first = next((i for i in self.query(Input) if not i.disabled), None)
        if first is not None:
            first.focus()

    def values(self) -> dict[str, str]:
        values = {}
        for f in self.fields:
            widget = self.query_one(f"#field-{f.key}")
            values[f.key] = widget.text if isinstance(widget, TextArea) else widget.value.strip()
        return values

    @on(Button.Pressed, "#form-ok")
    @on(Input.Submitted)
    def _ok(self) -> None:
        self.send()

    @work(exclusive=True, group="form", exit_on_error=False)
    async def send(self) -> None:
        values = self.values()
        self.query_one("#form-error", Static).update("…")
        error = await self.submit(values)
        if error:
            self.query_one("#form-error", Static).update(error)
        else:
            self.dismiss(values)

    @on(Button.Pressed, "#form-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class TextScreen(ModalScreen[None]):
    """A long text (a mail, a torrent's details), closed with escape."""

    DEFAULT_CSS = """
    TextScreen { align: center middle; }
    TextScreen > VerticalScroll { width: 90%; height: 80%; border: thick $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close")]

    def __init__(self, title: str, text: str):
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(f"[b]{self.title_text}[/b]")
            yield Static(self.text, markup=False, id="text-body")
            yield Button("Close", id="text-close")

    @on(Button.Pressed, "#text-close")
    def action_close(self) -> None:
        self.dismiss(None)


def pick(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: mapping[k] for k in keys if mapping.get(k) not in (None, "")}


def service_where(service: dict[str, Any]) -> str:
    listen = service.get("listen")
    if isinstance(listen, dict):
        return ", ".join(f"{what} {where}" for what, where in listen.items())
    if isinstance(listen, (list, tuple)):
        return ", ".join(map(str, listen))
    return str(listen or "")
