"""The bridge's routes table: every route has a name of its own, so ``url_path_for`` finds it."""

from __future__ import annotations

from starlette.routing import Route

from bridge.app import create_app
from broker.settings import BrokerURL, BusSettings


def test_route_names_are_unique_and_chosen() -> None:
    app = create_app(BusSettings(BrokerURL()))
    routes = [route for route in app.routes if isinstance(route, Route)]
    assert len(routes) == len(app.routes) > 10
    names = [route.name for route in routes]
    assert sorted(set(names)) == sorted(names), names
    for route in routes:
        if "<locals>" in route.endpoint.__qualname__:
            # Made by a factory (bridge.replies.relay): the function's name is the factory's,
            # shared by every route it makes.
            assert route.name != route.endpoint.__name__, route.path
        params = dict.fromkeys(route.param_convertors, "ann")
        assert app.url_path_for(route.name, **params) == route.path.format(**params)


def test_relayed_routes_are_named_after_their_reply_type() -> None:
    app = create_app(BusSettings(BrokerURL()))
    assert app.url_path_for("login") == "/login"
    assert app.url_path_for("register_user") == "/register/user"
    assert app.url_path_for("reset_password") == "/reset_password"
    assert app.url_path_for("reset_password_confirm") == "/reset_password/confirm"
