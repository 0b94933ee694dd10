"""The streaming rule engine and the alarm writer (see docs/alarms.md).

`service.AlertingService` is the ingester's listener; `engine.Engine` evaluates rules in memory;
`writer.AlarmWriter` drains decisions, fire first, into `firetower.alarm_store`.
"""
