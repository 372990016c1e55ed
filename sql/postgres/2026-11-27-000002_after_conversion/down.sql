ALTER TABLE mailboxes DROP COLUMN after_conversion;
