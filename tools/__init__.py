"""Tools the agent can call; installed as ``zoom_agent.tools``.

The zoom call's wire contract (name, schema, argument rule) is `zoom_agent.protocol`'s;
`TemporalZoom` runs a call against one video.
"""

from zoom_agent.tools.zoom import TemporalZoom, ZoomResult

__all__ = ["TemporalZoom", "ZoomResult"]
