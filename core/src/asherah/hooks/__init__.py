"""Hooks for observers and contributors, served by pluggy (group ``asherah.hooks``).

A plugin is any module or object with functions named after the specs in
:mod:`asherah.hooks.spec`, decorated with :data:`hookimpl`, published under the entry-point
group ``asherah.hooks``. Hooks observe; they never select drivers (stevedore does that) and
they receive metadata only: ids, timestamps, durations, exception type names.

Environment switches: ``ASHERAH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry-point plugins;
``ASHERAH_BLOCK_PLUGINS=name1,name2`` skips those entry-point names.
"""

from __future__ import annotations

import pluggy

NAME = "asherah"
ENTRY_POINT_GROUP = "asherah.hooks"

#: Marks a plugin function as an implementation of one of the specs.
hookimpl = pluggy.HookimplMarker(NAME)

__all__ = ["ENTRY_POINT_GROUP", "NAME", "hookimpl"]
