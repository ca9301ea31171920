-- A keyed hash of a fixed label under the key secret: a start with another
-- secret than the one the database's keys were made under would refuse every
-- key, so it stops instead. NULL until the first start that records it.
ALTER TABLE instance ADD COLUMN key_secret_check BLOB;
