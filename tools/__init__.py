"""Tools the agent can call; installed as ``zoom_agent.tools``."""

from zoom_agent.tools.zoom import TOOL_NAME, TemporalZoom, ZoomArgs, ZoomResult

__all__ = ["TOOL_NAME", "TemporalZoom", "ZoomArgs", "ZoomResult"]
