-- Sessions that end: every bearer token carries the user's token_version (claim `ver`), and
-- a token whose version is not the user's current one is refused. A password change,
-- disabling the user, or a change of its role or sites bumps it, so tokens issued before
-- are refused at once (and open live streams close).
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 1;
