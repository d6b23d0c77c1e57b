"""LangGraph state machines; installed as ``zoom_agent.graphs``."""

from zoom_agent.graphs.state import ZoomContext, ZoomState
from zoom_agent.graphs.zoom import build_zoom_graph

__all__ = ["ZoomContext", "ZoomState", "build_zoom_graph"]
