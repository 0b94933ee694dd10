-- Tell the ingesters and rule engines about a device's new placement too: its site decides
-- its partition (docs/scaling.md), and site, panel and zone feed the rule engine (zone
-- coincidence, panel inhibition, site alarm groups). 0001 notified kind and lifecycle only.
DROP TRIGGER devices_notify ON devices;
CREATE TRIGGER devices_notify
    AFTER INSERT OR UPDATE OF kind, lifecycle, site_id, parent_id, zone OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION notify_device_change();
