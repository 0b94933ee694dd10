"""Roles and what each may do: the whole authorization policy as one table.

Scope is separate from role: a user with `site_ids` set (always so for installers and site
managers) sees only those sites, and every other site's objects answer 404, not 403, so a
scoped user cannot learn which ids exist elsewhere.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"          # warning-centre duty operator
    INSTALLER = "installer"        # installation / maintenance company (scoped)
    SITE_MANAGER = "site_manager"  # fire-safety manager of a site (scoped, read + comment)
    SUPERVISOR = "supervisor"      # authority: read-only statistics
    INTEGRATION = "integration"    # machine access with an API key


class Permission(StrEnum):
    SITE_READ = "site:read"
    SITE_WRITE = "site:write"          # create, rename, delete sites; contacts, fire plan
    FLOOR_WRITE = "floor:write"        # floors and floor-plan images
    DEVICE_READ = "device:read"
    DEVICE_WRITE = "device:write"      # register, import, place, commission, test, credentials
    TELEMETRY_READ = "telemetry:read"
    ALARM_READ = "alarm:read"
    ALARM_HANDLE = "alarm:handle"      # acknowledge, verdict, assign
    ALARM_COMMENT = "alarm:comment"
    RULE_READ = "rule:read"
    RULE_WRITE = "rule:write"          # thresholds and rule parameters
    RULE_MODE = "rule:mode"            # test / disabled / maintenance modes
    USER_ADMIN = "user:admin"          # users and API keys
    STATS_READ = "stats:read"
    ORG_READ = "org:read"              # jurisdictions, units, companies, contracts (in scope)
    ORG_WRITE = "org:write"            # change the tree, units, companies, contracts; placement
    AUDIT_READ = "audit:read"          # the audit log of organisation and user changes


_READ = {Permission.SITE_READ, Permission.DEVICE_READ, Permission.TELEMETRY_READ,
         Permission.ALARM_READ, Permission.ORG_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(_READ | {Permission.ALARM_HANDLE, Permission.ALARM_COMMENT,
                                      Permission.RULE_READ, Permission.RULE_MODE,
                                      Permission.STATS_READ}),
    Role.INSTALLER: frozenset(_READ | {Permission.FLOOR_WRITE, Permission.DEVICE_WRITE,
                                       Permission.ALARM_COMMENT, Permission.RULE_READ,
                                       Permission.RULE_MODE}),
    Role.SITE_MANAGER: frozenset(_READ | {Permission.ALARM_COMMENT}),
    Role.SUPERVISOR: frozenset(_READ | {Permission.STATS_READ, Permission.RULE_READ}),
    Role.INTEGRATION: frozenset(_READ),
}

# Roles that must be limited to a list of sites.
SCOPED_ROLES = frozenset({Role.INSTALLER, Role.SITE_MANAGER})
