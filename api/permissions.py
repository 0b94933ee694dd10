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
    GRID_MEMBER = "grid_member"    # grid worker (网格员): patrols, finds and follows hazards (scoped)


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
    # The hazard loop, work orders, patrols, inspections, public reports (docs/hazards.md)
    HAZARD_READ = "hazard:read"
    HAZARD_REPORT = "hazard:report"        # record a hazard; notify the responsible unit (抄告)
    HAZARD_RECTIFY = "hazard:rectify"      # sign the notice's receipt; submit a rectification
    HAZARD_VERIFY = "hazard:verify"        # verify (复查) or reject a rectification; close
    HAZARD_SUPERVISE = "hazard:supervise"  # escalate, list for supervision (挂牌督办), deadlines
    WORKORDER_READ = "workorder:read"
    WORKORDER_HANDLE = "workorder:handle"  # the maintenance company: respond, report the repair
    WORKORDER_DECIDE = "workorder:decide"  # close an order without the device's normal report
    PATROL_READ = "patrol:read"
    PATROL_PLAN = "patrol:plan"            # patrol plans and checkpoints
    PATROL_CHECKIN = "patrol:checkin"      # check in at a checkpoint with the checklist
    INSPECTION_DRAW = "inspection:draw"    # double-random draws and inspection results
    REPORT_TRIAGE = "report:triage"        # public reports: read contacts, merge, convert, reward
    FILE_UPLOAD = "file:upload"            # photos and documents for hazards, orders, patrols
    # Notifications, duty rosters and heightened watch (docs/notifications.md)
    NOTIFY_READ = "notify:read"            # the messages log, contacts (addresses redacted)
    NOTIFY_MANAGE = "notify:manage"        # contacts, policies, escalation chains
    DUTY_READ = "duty:read"                # rosters, who is on duty, the duty log, hand-overs
    DUTY_LOG = "duty:log"                  # write the duty log; hand over a shift
    DUTY_PLAN = "duty:plan"                # rosters and shifts
    WATCH_READ = "watch:read"              # heightened-watch windows, the board, work prompts
    WATCH_MANAGE = "watch:manage"          # open and cancel watch windows; send work prompts
    PROMPT_RECEIPT = "prompt:receipt"      # confirm reading a work prompt
    # Assessment (docs/assessment.md): reading the indicators is STATS_READ
    TARGET_WRITE = "assessment:target"     # set a jurisdiction's yearly targets


_READ = {Permission.SITE_READ, Permission.DEVICE_READ, Permission.TELEMETRY_READ,
         Permission.ALARM_READ, Permission.ORG_READ, Permission.HAZARD_READ,
         Permission.WORKORDER_READ, Permission.PATROL_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(_READ | {Permission.ALARM_HANDLE, Permission.ALARM_COMMENT,
                                      Permission.RULE_READ, Permission.RULE_MODE,
                                      Permission.STATS_READ, Permission.HAZARD_REPORT,
                                      Permission.WORKORDER_DECIDE, Permission.REPORT_TRIAGE,
                                      Permission.FILE_UPLOAD, Permission.NOTIFY_READ,
                                      Permission.DUTY_READ, Permission.DUTY_LOG,
                                      Permission.WATCH_READ, Permission.PROMPT_RECEIPT}),
    Role.INSTALLER: frozenset(_READ | {Permission.FLOOR_WRITE, Permission.DEVICE_WRITE,
                                       Permission.ALARM_COMMENT, Permission.RULE_READ,
                                       Permission.RULE_MODE, Permission.WORKORDER_HANDLE,
                                       Permission.FILE_UPLOAD}),
    Role.SITE_MANAGER: frozenset(_READ | {Permission.ALARM_COMMENT, Permission.HAZARD_RECTIFY,
                                          Permission.FILE_UPLOAD, Permission.WATCH_READ,
                                          Permission.PROMPT_RECEIPT}),
    Role.SUPERVISOR: frozenset(_READ | {Permission.STATS_READ, Permission.RULE_READ,
                                        Permission.HAZARD_REPORT, Permission.HAZARD_VERIFY,
                                        Permission.HAZARD_SUPERVISE, Permission.WORKORDER_DECIDE,
                                        Permission.PATROL_PLAN, Permission.INSPECTION_DRAW,
                                        Permission.REPORT_TRIAGE, Permission.FILE_UPLOAD,
                                        Permission.NOTIFY_READ, Permission.NOTIFY_MANAGE,
                                        Permission.DUTY_READ, Permission.DUTY_LOG,
                                        Permission.DUTY_PLAN, Permission.WATCH_READ,
                                        Permission.WATCH_MANAGE, Permission.TARGET_WRITE}),
    Role.INTEGRATION: frozenset(_READ),
    Role.GRID_MEMBER: frozenset(_READ | {Permission.HAZARD_REPORT, Permission.HAZARD_RECTIFY,
                                         Permission.PATROL_CHECKIN, Permission.FILE_UPLOAD,
                                         Permission.WATCH_READ, Permission.PROMPT_RECEIPT}),
}

# Roles that must be limited to a list of sites.
SCOPED_ROLES = frozenset({Role.INSTALLER, Role.SITE_MANAGER, Role.GRID_MEMBER})
