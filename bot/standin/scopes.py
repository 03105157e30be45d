"""The OAuth scopes Slack documents for each Web API method the bot calls, and why the bot
asks for each scope in `manifest.yml`.

`tests/unit/test_scopes.py` reads the code for the methods it calls and checks that the
manifest asks for exactly the scopes those need; the Slack stand-in answers `missing_scope`
for a method whose scope was not granted, so every test runs with the manifest's scopes.
"""

from __future__ import annotations

from collections.abc import Mapping

# The bot token scopes each method needs, as https://api.slack.com/methods/<method> lists
# them; () for "no scope required". Any one of a method's scopes is enough.
METHOD_SCOPES: Mapping[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.getPermalink": (),
    "conversations.open": ("channels:manage", "groups:write", "im:write", "mpim:write"),
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.list": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.join": ("channels:join",),
    "conversations.history": ("channels:history", "groups:history", "im:history"),
    "conversations.replies": ("channels:history", "groups:history", "im:history"),
    "users.info": ("users:read",),
    "usergroups.users.list": ("usergroups:read",),
    "views.publish": (),
    "views.open": (),
    "views.push": (),
    "views.update": (),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}

# Methods the bot calls on more than public channels, and the scope of each kind it calls
# them on: reading back its own messages (a post whose answer was lost, see
# `bot/services/posted.py`) in the channel, a private one, and a person's DM, whose `D…`
# ID conversations.open gives (reads do not take a user ID).
CONVERSATION_SCOPES: Mapping[str, tuple[str, ...]] = {
    "conversations.history": ("channels:history", "groups:history", "im:history"),
    "conversations.replies": ("channels:history", "groups:history", "im:history"),
    "conversations.open": ("im:write",),
}

# Methods called with the app-level token (Socket Mode), whose scope is not a bot scope.
APP_TOKEN_METHODS: Mapping[str, str] = {"apps.connections.open": "connections:write"}

# slack_sdk helpers that call several methods.
SDK_HELPERS: Mapping[str, tuple[str, ...]] = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}

# Scopes no method needs, and what needs them.
FEATURE_SCOPES: Mapping[str, str] = {
    "commands": "the /rollout slash command",
    "chat:write.public": "posting in the configured channel without being invited to it "
    "(chat.postMessage answers not_in_channel without it)",
}

# Why the bot calls each method (shown in docs/slack-app.md).
WHY: Mapping[str, str] = {
    "chat.postMessage": "rollout threads, checkpoints, incidents, pages by direct message",
    "chat.update": "the thread's parent message, incident messages, answered pages",
    "chat.postEphemeral": "an answer only the clicker sees, where a click had no response_url",
    "chat.getPermalink": "the App Home's link to each rollout's thread",
    "conversations.history": "finding a message whose answer was lost before posting it again",
    "conversations.replies": "finding a thread reply whose answer was lost before posting it "
    "again",
    "conversations.open": "the DM's ID, to find a page whose answer was lost",
    "users.info": "people's names on the dashboard",
    "usergroups.users.list": "on-call levels that name a user group",
    "views.publish": "the App Home tab",
    "views.open": "the reason asked by Pause and Roll back",
    "files.getUploadURLExternal": "the daily summary's chart (with its alt text)",
    "files.completeUploadExternal": "the daily summary's chart, in the summary's thread",
}


def sdk_method(name: str) -> tuple[str, ...]:
    """The Web API methods a slack_sdk client method calls: `chat_postMessage` is
    `chat.postMessage`, `usergroups_users_list` is `usergroups.users.list`."""
    return SDK_HELPERS.get(name, (name.replace("_", "."),))


def scopes_needed(methods: set[str]) -> set[str]:
    """The bot scopes for calling `methods`: the first scope Slack lists for each (the one
    for public channels, where a method takes several kinds of conversation), or those of
    `CONVERSATION_SCOPES` for a method called on several kinds."""
    needed: set[str] = set()
    for method in methods:
        if method in CONVERSATION_SCOPES:
            needed.update(CONVERSATION_SCOPES[method])
        elif METHOD_SCOPES.get(method):
            needed.add(METHOD_SCOPES[method][0])
    return needed
