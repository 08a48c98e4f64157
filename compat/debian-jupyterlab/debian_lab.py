"""JupyterLab 4.5's page and server API on Debian's jupyterlab_server 2.16.

`DebianLab` does what PyPI's `jupyterlab.labapp.LabApp` does for its own
build, for the build in build/: it points jupyterlab_server at the bundle,
schemas and themes, fills in the page config keys JupyterLab 4.5 reads, and
answers the few requests JupyterLab 4.5 makes that jupyter_server 1.23
predates (each would otherwise be a 404 in the browser console).
"""

import json
from pathlib import Path

import jupyter_server
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.zmqhandlers import WebSocketMixin
from jupyter_server.utils import url_path_join
from jupyterlab_server import LabServerApp
from tornado import web, websocket
from traitlets import Bool, default

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"
JUPYTERLAB_VERSION = json.loads((HERE / "package.json").read_text())["jupyterlab"]["version"]


class IdentityHandler(APIHandler):
    """/api/me (jupyter_server 2): who the user is and what they may do.

    jupyter_server 1 knows a user only as the name `current_user` returns.
    """

    @web.authenticated
    def get(self):
        user = self.current_user
        name = user if isinstance(user, str) else getattr(user, "username", "user")
        self.finish(
            json.dumps(
                {
                    "identity": {
                        "username": name,
                        "name": name,
                        "display_name": name,
                        "initials": name[:1].upper(),
                        "avatar_url": None,
                        "color": None,
                    },
                    "permissions": {},
                }
            )
        )


class EventsSubscribeHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):
    """/api/events/subscribe (jupyter_server 2's event bus): a socket that
    stays open and quiet, since jupyter_server 1 emits no events."""

    async def get(self, *args, **kwargs):
        if self.current_user is None:
            raise web.HTTPError(403)
        await super().get(*args, **kwargs)

    def on_message(self, message):
        pass


class LanguageServerStatusHandler(APIHandler):
    """/lsp/status (the jupyter-lsp server extension): no language servers."""

    @web.authenticated
    def get(self):
        self.finish(json.dumps({"version": 2, "sessions": {}, "specs": {}}))


class DebianLab(LabServerApp):
    name = "lab"
    app_name = "JupyterLab"
    default_url = "/lab"
    load_other_extensions = False

    expose_app_in_browser = Bool(False, config=True, help="Make the application reachable as window.jupyterapp.")

    @default("app_version")
    def _default_app_version(self):
        return JUPYTERLAB_VERSION

    @default("static_dir")
    def _default_static_dir(self):
        return str(BUILD / "static")

    @default("templates_dir")
    def _default_templates_dir(self):
        return str(HERE / "templates")

    @default("schemas_dir")
    def _default_schemas_dir(self):
        return str(BUILD / "schemas")

    @default("themes_dir")
    def _default_themes_dir(self):
        return str(BUILD / "themes")

    @default("app_settings_dir")
    def _default_app_settings_dir(self):
        # The installation's page_config.json (and overrides.json, if any).
        return str(HERE / "settings")

    def initialize_handlers(self):
        serverapp = self.serverapp
        page_config = serverapp.web_app.settings.setdefault("page_config_data", {})
        page_config.update(
            {
                "appName": self.app_name,
                "appVersion": self.app_version,
                "buildAvailable": False,
                "buildCheck": False,
                "devMode": False,
                "exposeAppInBrowser": self.expose_app_in_browser,
                "token": serverapp.token,
                "quitButton": serverapp.quit_button,
                "allow_hidden_files": serverapp.contents_manager.allow_hidden,
                "notebookVersion": json.dumps(list(jupyter_server.version_info)),
                "news": {"disabled": True},
            }
        )
        self.handlers.extend(
            [
                (r"/api/me", IdentityHandler),
                (r"/api/events/subscribe", EventsSubscribeHandler),
                (url_path_join("/lsp", "status"), LanguageServerStatusHandler),
            ]
        )
        super().initialize_handlers()


def _jupyter_server_extension_points():
    # jupyter_server 1 looks the app up here, in the module that defines it.
    return [{"module": __name__, "app": DebianLab}]
