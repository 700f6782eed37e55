"""The global mute shortcut: its spelling in the preferences ("ctrl+option+m"), what the menu
shows ("⌃⌥M"), and the Carbon key code and modifier mask macOS registers it by.

Carbon's `RegisterEventHotKey` needs no Accessibility permission (an event tap or an NSEvent
global monitor would); rumps_toolkit.py registers it through `quickmachotkey`, which installs
its handler on the application's event dispatcher, so presses arrive on rumps' own run loop
(the main thread). Everything here is pure, so it is tested anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

DEFAULT_MUTE_HOTKEY = "ctrl+option+m"
# Offered in the menu's Preferences (any other spelling works in menubar.json).
MUTE_HOTKEY_CHOICES = ("ctrl+option+m", "ctrl+option+space", "ctrl+shift+m", "f5", "off")

# Carbon modifier masks (Events.h), in the order macOS writes their symbols.
MODIFIERS = {
    "ctrl": (0x1000, "⌃"),  # controlKey
    "option": (0x0800, "⌥"),  # optionKey
    "shift": (0x0200, "⇧"),  # shiftKey
    "cmd": (0x0100, "⌘"),  # cmdKey
}
ALIASES = {"control": "ctrl", "alt": "option", "opt": "option", "command": "cmd"}

# kVK_* virtual key codes (Events.h): a US-layout position, the same on every layout.
_LETTERS = "asdfhgzxcv?bqweryt"  # 0x00-0x11, 0x0A is not a letter
KEYS: dict[str, int] = {c: i for i, c in enumerate(_LETTERS) if c != "?"}
KEYS.update({"o": 0x1F, "u": 0x20, "i": 0x22, "p": 0x23, "l": 0x25, "j": 0x26, "k": 0x28})
KEYS.update({"n": 0x2D, "m": 0x2E})
KEYS.update({"1": 0x12, "2": 0x13, "3": 0x14, "4": 0x15, "5": 0x17, "6": 0x16})
KEYS.update({"7": 0x1A, "8": 0x1C, "9": 0x19, "0": 0x1D})
KEYS.update({"space": 0x31, "return": 0x24, "tab": 0x30, "escape": 0x35})
_F = [0x7A, 0x78, 0x63, 0x76, 0x60, 0x61, 0x62, 0x64, 0x65, 0x6D, 0x67, 0x6F]
KEYS.update({f"f{n}": code for n, code in enumerate(_F, start=1)})
_SHOWN = {"space": "Space", "return": "↩", "tab": "⇥", "escape": "⎋"}


@dataclass(frozen=True)
class HotKey:
    key: str  # a name in KEYS
    modifiers: tuple[str, ...]  # names in MODIFIERS, in their order

    @property
    def key_code(self) -> int:
        return KEYS[self.key]

    @property
    def modifier_mask(self) -> int:
        mask = 0
        for m in self.modifiers:
            mask |= MODIFIERS[m][0]
        return mask

    @property
    def spec(self) -> str:
        return "+".join([*self.modifiers, self.key])

    @property
    def symbol(self) -> str:
        """As the menu shows it, e.g. ⌃⌥M."""
        key = _SHOWN.get(self.key, self.key.upper())
        return "".join(MODIFIERS[m][1] for m in self.modifiers) + key


def parse_hotkey(spec: str) -> HotKey | None:
    """ "ctrl+option+m" -> HotKey; "off" (or "") -> None; anything else: UsageError."""
    text = spec.strip().lower()
    if text in ("", "off", "none"):
        return None
    parts = [ALIASES.get(p.strip(), p.strip()) for p in text.split("+")]
    *mods, key = parts
    unknown = [m for m in mods if m not in MODIFIERS]
    if unknown or key not in KEYS or len(set(mods)) != len(mods):
        raise UsageError(
            f"mute shortcut {spec!r} is not a shortcut: write modifiers and a key joined by "
            "'+', e.g. ctrl+option+m (modifiers: ctrl, option, shift, cmd)"
        )
    if not mods and not key.startswith("f"):
        raise UsageError(f"mute shortcut {spec!r} needs a modifier (only F-keys stand alone)")
    order = list(MODIFIERS)
    return HotKey(key, tuple(sorted(mods, key=order.index)))


def describe(spec: str) -> str:
    """What the menu shows for a spelling: ⌃⌥M, or "off"."""
    try:
        hotkey = parse_hotkey(spec)
    except UsageError:
        return "invalid"
    return "off" if hotkey is None else hotkey.symbol
