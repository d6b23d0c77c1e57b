"""zoom-agent: grounded video question answering by temporal zoom-in (Zoom-Zero).

Importing this package stays light: no torch, transformers, vllm or OpenCV until a
component that needs them is used.
"""

from zoom_agent.config import Budget
from zoom_agent.types import ClipRef, Question, Span, VideoInfo

__all__ = ["Budget", "ClipRef", "Question", "Span", "VideoInfo"]
__version__ = "0.1.0"
