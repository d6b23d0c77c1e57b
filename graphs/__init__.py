"""LangGraph state machines; installed as ``zoom_agent.graphs``."""

from zoom_agent.graphs.state import ZoomContext, ZoomInput, ZoomOutput, ZoomState
from zoom_agent.graphs.zoom import build_zoom_graph

__all__ = ["ZoomContext", "ZoomInput", "ZoomOutput", "ZoomState", "build_zoom_graph"]
