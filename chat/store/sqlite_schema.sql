-- The SQLite schema that chat/migrations make, given to a new database in their place.
-- Written by tools/sqlite_schema.py: do not edit; run it again after adding a migration.
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR(32) NOT NULL, 
	username_key VARCHAR(32) NOT NULL, 
	password_hash VARCHAR(256) NOT NULL, 
	created_at BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (username_key)
);
CREATE TABLE directs (
	id INTEGER NOT NULL, 
	sender VARCHAR(32) NOT NULL, 
	recipient VARCHAR(32) NOT NULL, 
	text TEXT NOT NULL, 
	ts BIGINT NOT NULL, 
	client_id VARCHAR(64), 
	PRIMARY KEY (id), 
	CONSTRAINT uq_directs_sender_client UNIQUE (sender, client_id)
);
CREATE INDEX ix_directs_pair ON directs (sender, recipient, id);
CREATE TABLE notifications (
	id INTEGER NOT NULL, 
	recipient VARCHAR(32) NOT NULL, 
	title VARCHAR(200) NOT NULL, 
	body TEXT NOT NULL, 
	level VARCHAR(16) NOT NULL, 
	ts BIGINT NOT NULL, 
	read_at BIGINT, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_notifications_recipient ON notifications (recipient, id);
CREATE TABLE "rooms" (
	id INTEGER NOT NULL, 
	name VARCHAR(64) NOT NULL, 
	last_seq BIGINT DEFAULT '0' NOT NULL, 
	created_at BIGINT NOT NULL, 
	private BOOLEAN DEFAULT 0 NOT NULL, 
	owner VARCHAR(32), last_rev BIGINT DEFAULT '0' NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
CREATE TABLE room_members (
	id INTEGER NOT NULL, 
	room_id INTEGER NOT NULL, 
	username VARCHAR(32) NOT NULL, 
	username_key VARCHAR(32) NOT NULL, 
	added_at BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_room_members_room_user UNIQUE (room_id, username_key), 
	FOREIGN KEY(room_id) REFERENCES rooms (id)
);
CREATE INDEX ix_room_members_user ON room_members (username_key);
CREATE TABLE sessions (
	id VARCHAR(64) NOT NULL, 
	username VARCHAR(32) NOT NULL, 
	username_key VARCHAR(32) NOT NULL, 
	kind VARCHAR(8) NOT NULL, 
	created_at BIGINT NOT NULL, 
	expires_at BIGINT NOT NULL, 
	revoked_at BIGINT, revoked_code VARCHAR(32), 
	PRIMARY KEY (id)
);
CREATE INDEX ix_sessions_user ON sessions (username_key, expires_at);
CREATE TABLE "messages" (
	id INTEGER NOT NULL, 
	room_id INTEGER NOT NULL, 
	seq BIGINT NOT NULL, 
	author VARCHAR(32) NOT NULL, 
	text TEXT NOT NULL, 
	ts BIGINT NOT NULL, 
	client_id VARCHAR(64), 
	rev BIGINT DEFAULT '0' NOT NULL, 
	edited_at BIGINT, 
	deleted BOOLEAN DEFAULT 0 NOT NULL, 
	reactions TEXT, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_messages_room_author_client UNIQUE (room_id, author, client_id), 
	CONSTRAINT uq_messages_room_seq UNIQUE (room_id, seq), 
	FOREIGN KEY(room_id) REFERENCES rooms (id)
);
CREATE TABLE room_reads (
	id INTEGER NOT NULL, 
	room_id INTEGER NOT NULL, 
	username_key VARCHAR(32) NOT NULL, 
	last_read BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_room_reads_room_user UNIQUE (room_id, username_key), 
	FOREIGN KEY(room_id) REFERENCES rooms (id)
);
CREATE INDEX ix_room_reads_user ON room_reads (username_key);
CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE messages_fts_state (indexed_to INTEGER NOT NULL);
CREATE TABLE direct_reads (
	id INTEGER NOT NULL, 
	username_key VARCHAR(32) NOT NULL, 
	peer_key VARCHAR(32) NOT NULL, 
	last_read BIGINT NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_direct_reads_user_peer UNIQUE (username_key, peer_key)
);
CREATE INDEX ix_direct_reads_peer ON direct_reads (peer_key, username_key);
CREATE INDEX ix_directs_recipient ON directs (recipient, sender, id);
CREATE VIRTUAL TABLE directs_fts USING fts5(text, content='directs', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE TABLE directs_fts_state (indexed_to INTEGER NOT NULL);
CREATE INDEX ix_messages_room_rev ON messages (room_id, rev) WHERE rev > 0;
CREATE TRIGGER messages_last_seq AFTER INSERT ON messages BEGIN UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id AND last_seq < NEW.seq; END;
INSERT INTO "alembic_version" VALUES ('0011');
INSERT INTO "directs_fts_state" VALUES (0);
INSERT INTO "messages_fts_state" VALUES (0);
