"""Every dashboard route. All of them refuse requests without a session, except POST /login."""

from __future__ import annotations

from starlette.routing import Route

from revlens.web import api, assets, pages
from revlens.web.access import guarded

ROUTES = [
    Route("/", pages.home),
    Route("/login", pages.login, methods=["POST"]),
    Route("/logout", pages.logout, methods=["POST"]),
    Route("/static/{name}", guarded(assets.serve)),
    Route("/p/{project}", pages.dashboard_page),
    Route("/p/{project}/chart", pages.builder_page),
    Route("/p/{project}/retention", pages.retention_page),
    Route("/p/{project}/cohorts", pages.cohorts_page),
    Route("/p/{project}/setup", pages.setup_page),
    Route("/p/{project}/boards", api.boards_route, methods=["GET", "POST"]),
    Route("/p/{project}/boards/{board_id}", api.board_route, methods=["GET", "PUT", "DELETE"]),
    Route("/p/{project}/preview", api.preview_route, methods=["POST"]),
    Route("/p/{project}/status", api.status_route),
]
