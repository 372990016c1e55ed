-- What the milter does with a mailbox's own copy of a message once it is converted:
-- 'deliver' (keep delivering it), 'remove' (delete only this recipient; the others still get
-- the message) or 'discard' (drop the message when every recipient is a converted mailbox).
ALTER TABLE mailboxes ADD COLUMN after_conversion TEXT NOT NULL DEFAULT 'deliver'
    CHECK (after_conversion IN ('deliver', 'remove', 'discard'));
