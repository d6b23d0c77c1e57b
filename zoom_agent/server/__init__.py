"""Serving the agent to other programs: the MCP server (`zoom_agent.server.mcp`) and the
LangGraph deployment graph (`zoom_agent.server.graph`), both under one set of limits
(`zoom_agent.server.limits`)."""
