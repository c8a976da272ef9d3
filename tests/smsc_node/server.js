#!/usr/bin/env node
// An SMPP 3.4 SMSC built on the npm `smpp` package: an implementation the gateway did not
// write, used by its tests over real TCP.
//
// Options (argv, or the environment variable in brackets):
//   --host H              [SMSC_HOST]              default 127.0.0.1
//   --port P              [SMSC_PORT]              default 0 (ephemeral)
//   --system-id S         [SMSC_SYSTEM_ID]         default "test"
//   --password W          [SMSC_PASSWORD]          default "secret"
//   --receipt-delay-ms N  [SMSC_RECEIPT_DELAY_MS]  default 100
//   --receipt-stat STAT   [SMSC_RECEIPT_STAT]      default DELIVRD
//   --id-format F         [SMSC_ID_FORMAT]         as-is | hex | dec, default as-is
//       hex: submit_sm_resp ids in hex, receipts carry them in decimal; dec: the reverse.
//
// stdout: one JSON object per line. The first is {"event":"listening","host":..,"port":..};
// then bind, submit_sm, receipt_sent, mo_sent, deliver_sm_resp, enquire_link, unbind, closed,
// gave_up, error, and ack (one per stdin command).
//
// stdin: one command per line.
//   mo FROM TO TEXT...                 MO deliver_sm to the bound receivers (GSM or UCS-2)
//   mo_raw FROM TO DCS ESM HEX         MO with exactly these data_coding, esm_class, octets
//   reject STATUS [COUNT]              answer the next COUNT submit_sm with STATUS (0x.. ok)
//   stat STAT                          final state of later receipts (DELIVRD, UNDELIV, ...)
//   drop                               close every connection without unbind
//   quit                               exit
'use strict';

const smpp = require('smpp');
const readline = require('readline');

// Keep the octets of submitted messages as they came (the package would decode them to text
// and split off the UDH): the tests compare exactly what the gateway sent.
smpp.commands.submit_sm.params.short_message = { type: smpp.types.buffer };
delete smpp.tlvs.message_payload.filter;

function option(name, envName, fallback) {
	const flag = '--' + name;
	const index = process.argv.indexOf(flag);
	if (index >= 0 && index + 1 < process.argv.length) {
		return process.argv[index + 1];
	}
	const prefixed = process.argv.find((arg) => arg.startsWith(flag + '='));
	if (prefixed) {
		return prefixed.slice(flag.length + 1);
	}
	if (process.env[envName] !== undefined && process.env[envName] !== '') {
		return process.env[envName];
	}
	return fallback;
}

const config = {
	host: option('host', 'SMSC_HOST', '127.0.0.1'),
	port: parseInt(option('port', 'SMSC_PORT', '0'), 10),
	systemId: option('system-id', 'SMSC_SYSTEM_ID', 'test'),
	password: option('password', 'SMSC_PASSWORD', 'secret'),
	receiptDelayMs: parseInt(option('receipt-delay-ms', 'SMSC_RECEIPT_DELAY_MS', '100'), 10),
	receiptStat: option('receipt-stat', 'SMSC_RECEIPT_STAT', 'DELIVRD').toUpperCase(),
	idFormat: option('id-format', 'SMSC_ID_FORMAT', 'as-is'),
};

if (!['as-is', 'hex', 'dec'].includes(config.idFormat)) {
	process.stderr.write('--id-format must be as-is, hex or dec\n');
	process.exit(2);
}

const MESSAGE_STATE = {
	ENROUTE: 1, DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8,
};
const MAX_ATTEMPTS = 5;

function emit(event, fields) {
	process.stdout.write(JSON.stringify(Object.assign({ event }, fields || {})) + '\n');
}

// --- sessions ------------------------------------------------------------------------------

const sessions = new Set();
const pending = [];  // deliver_sm waiting for a receiver: {kind, options, attempts}
let rejectStatus = 0;
let rejectCount = 0;
let nextNumber = 0x10000000 + Math.floor(Math.random() * 0x0fffffff);

function receivers() {
	return [...sessions].filter((s) => s.bound && (s.mode === 'receiver' || s.mode === 'transceiver'));
}

function pickReceiver(preferred) {
	if (preferred && sessions.has(preferred) && preferred.bound && preferred.mode === 'transceiver') {
		return preferred;
	}
	const all = receivers();
	if (all.length === 0) {
		return null;
	}
	pickReceiver.counter = ((pickReceiver.counter || 0) + 1) % all.length;
	return all[pickReceiver.counter];
}

function deliver(item, preferred) {
	const session = pickReceiver(preferred);
	if (!session) {
		pending.push(item);
		return;
	}
	item.attempts += 1;
	const pdu = new smpp.PDU('deliver_sm', Object.assign({}, item.options));
	session.inflight.add(item);
	session.send(pdu, (resp) => {
		session.inflight.delete(item);
		emit('deliver_sm_resp', { kind: item.kind, id: item.id, command_status: resp.command_status });
		if (resp.command_status !== 0) {
			retry(item);
		}
	});
	emit(item.kind === 'receipt' ? 'receipt_sent' : 'mo_sent', {
		id: item.id, attempt: item.attempts, sequence_number: pdu.sequence_number,
	});
}

function retry(item) {
	if (item.attempts >= MAX_ATTEMPTS) {
		emit('gave_up', { kind: item.kind, id: item.id });
		return;
	}
	setTimeout(() => deliver(item, null), config.receiptDelayMs * item.attempts);
}

function flushPending() {
	const waiting = pending.splice(0, pending.length);
	for (const item of waiting) {
		deliver(item, null);
	}
}

// --- message ids and receipts --------------------------------------------------------------

function newIds() {
	nextNumber += 1;
	const hex = nextNumber.toString(16);
	const dec = nextNumber.toString(10);
	if (config.idFormat === 'hex') {
		return { submitId: hex, receiptId: dec };
	}
	if (config.idFormat === 'dec') {
		return { submitId: dec, receiptId: hex };
	}
	return { submitId: hex, receiptId: hex };
}

function smppDate(date) {
	const two = (n) => String(n).padStart(2, '0');
	return two(date.getUTCFullYear() % 100) + two(date.getUTCMonth() + 1) + two(date.getUTCDate()) +
		two(date.getUTCHours()) + two(date.getUTCMinutes());
}

function receiptFor(pdu, receiptId, submitted) {
	const stat = config.receiptStat;
	const state = MESSAGE_STATE[stat] || MESSAGE_STATE.UNKNOWN;
	const delivered = stat === 'DELIVRD' ? '001' : '000';
	const original = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : Buffer.alloc(0);
	const snippet = original.toString('latin1').replace(/[^\x20-\x7e]/g, '.').slice(0, 20);
	const text = `id:${receiptId} sub:001 dlvrd:${delivered} submit date:${smppDate(submitted)} ` +
		`done date:${smppDate(new Date())} stat:${stat} err:${stat === 'DELIVRD' ? '000' : '001'} ` +
		`text:${snippet}`;
	return {
		source_addr_ton: pdu.dest_addr_ton,
		source_addr_npi: pdu.dest_addr_npi,
		source_addr: pdu.destination_addr,
		dest_addr_ton: pdu.source_addr_ton,
		dest_addr_npi: pdu.source_addr_npi,
		destination_addr: pdu.source_addr,
		esm_class: 0x04,
		data_coding: 0,
		short_message: Buffer.from(text, 'latin1'),
		receipted_message_id: receiptId,
		message_state: state,
	};
}

// --- MO ------------------------------------------------------------------------------------

const GSM_SAFE = /^[A-Za-z0-9 !"#%&'()*+,\-./:;<=>?\r\n]*$/;

function moOptions(from, to, dataCoding, esmClass, payload) {
	return {
		source_addr_ton: 1, source_addr_npi: 1, source_addr: from,
		dest_addr_ton: 1, dest_addr_npi: 1, destination_addr: to,
		esm_class: esmClass, data_coding: dataCoding, short_message: payload,
	};
}

function injectMo(from, to, text) {
	const gsm = GSM_SAFE.test(text);
	const payload = gsm ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf16le').swap16();
	deliver({ kind: 'mo', id: `mo-${Date.now()}`, attempts: 0,
		options: moOptions(from, to, gsm ? 0 : 8, 0, payload) }, null);
}

// --- the server ----------------------------------------------------------------------------

function onBind(session, pdu, mode) {
	session.pause();
	let status = 0;
	if (session.bound) {
		status = smpp.ESME_RALYBND;
	} else if (pdu.system_id !== config.systemId) {
		status = smpp.ESME_RINVSYSID;
	} else if (pdu.password !== config.password) {
		status = smpp.ESME_RINVPASWD;
	}
	session.send(pdu.response({ command_status: status, system_id: 'nodesmsc' }));
	emit('bind', { mode, system_id: pdu.system_id, command_status: status });
	if (status !== 0) {
		if (!session.bound) {
			setTimeout(() => session.close(), 10);
		}
		session.resume();
		return;
	}
	session.bound = true;
	session.mode = mode;
	session.resume();
	if (mode !== 'transmitter') {
		flushPending();
	}
}

function onSubmit(session, pdu) {
	if (!session.bound || session.mode === 'receiver') {
		session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
		return;
	}
	if (!pdu.destination_addr) {
		session.send(pdu.response({ command_status: smpp.ESME_RINVDSTADR }));
		return;
	}
	if (rejectCount > 0) {
		rejectCount -= 1;
		session.send(pdu.response({ command_status: rejectStatus }));
		emit('submit_sm', { destination_addr: pdu.destination_addr, command_status: rejectStatus });
		return;
	}
	const ids = newIds();
	session.send(pdu.response({ message_id: ids.submitId }));
	emit('submit_sm', {
		message_id: ids.submitId,
		receipt_id: ids.receiptId,
		source_addr: pdu.source_addr,
		destination_addr: pdu.destination_addr,
		data_coding: pdu.data_coding,
		esm_class: pdu.esm_class,
		registered_delivery: pdu.registered_delivery,
		short_message_hex: Buffer.isBuffer(pdu.short_message) ? pdu.short_message.toString('hex') : '',
		message_payload_hex: Buffer.isBuffer(pdu.message_payload) ? pdu.message_payload.toString('hex') : '',
		sar: pdu.sar_msg_ref_num === undefined ? undefined :
			[pdu.sar_msg_ref_num, pdu.sar_total_segments, pdu.sar_segment_seqnum],
		command_status: 0,
	});
	if ((pdu.registered_delivery & 0x03) !== 0) {
		const submitted = new Date();
		setTimeout(() => {
			deliver({ kind: 'receipt', id: ids.receiptId, attempts: 0,
				options: receiptFor(pdu, ids.receiptId, submitted) }, session);
		}, config.receiptDelayMs);
	}
}

function attach(session) {
	session.bound = false;
	session.mode = null;
	session.inflight = new Set();
	sessions.add(session);
	session.on('bind_transceiver', (pdu) => onBind(session, pdu, 'transceiver'));
	session.on('bind_transmitter', (pdu) => onBind(session, pdu, 'transmitter'));
	session.on('bind_receiver', (pdu) => onBind(session, pdu, 'receiver'));
	session.on('submit_sm', (pdu) => onSubmit(session, pdu));
	session.on('enquire_link', (pdu) => {
		session.send(pdu.response());
		emit('enquire_link', { mode: session.mode });
	});
	session.on('unknown', (pdu) => session.send(pdu.response()));
	session.on('unbind', (pdu) => {
		emit('unbind', { mode: session.mode });
		session.bound = false;
		session.send(pdu.response());
		setTimeout(() => session.close(), 10);
	});
	session.on('error', (err) => emit('error', { message: String(err && err.message) }));
	session.on('close', () => {
		sessions.delete(session);
		emit('closed', { mode: session.mode, unacknowledged: session.inflight.size });
		// deliver_sm sent but never answered: the SMSC redelivers them, as real ones do
		for (const item of session.inflight) {
			pending.push(item);
		}
		session.inflight.clear();
		if (pending.length && receivers().length) {
			flushPending();
		}
	});
}

const server = smpp.createServer(attach);
server.on('error', (err) => {
	emit('error', { message: String(err && err.message) });
	process.exit(1);
});
server.listen(config.port, config.host, () => {
	const address = server.address();
	emit('listening', { host: address.address, port: address.port });
});

// --- control on stdin ----------------------------------------------------------------------

function parseStatus(text) {
	const value = text.startsWith('0x') || text.startsWith('0X') ? parseInt(text, 16) : parseInt(text, 10);
	return Number.isNaN(value) ? null : value;
}

const commands = {
	mo(args) {
		if (args.length < 3) {
			return 'usage: mo FROM TO TEXT';
		}
		injectMo(args[0], args[1], args.slice(2).join(' '));
		return null;
	},
	mo_raw(args) {
		if (args.length !== 5 || !/^([0-9a-fA-F]{2})*$/.test(args[4])) {
			return 'usage: mo_raw FROM TO DCS ESM HEX';
		}
		const options = moOptions(args[0], args[1], parseStatus(args[2]) || 0, parseStatus(args[3]) || 0,
			Buffer.from(args[4], 'hex'));
		deliver({ kind: 'mo', id: `mo-${Date.now()}`, attempts: 0, options }, null);
		return null;
	},
	reject(args) {
		const status = args.length ? parseStatus(args[0]) : null;
		if (status === null) {
			return 'usage: reject STATUS [COUNT]';
		}
		rejectStatus = status;
		rejectCount = args.length > 1 ? parseInt(args[1], 10) || 1 : 1;
		return null;
	},
	stat(args) {
		if (args.length !== 1 || !(args[0].toUpperCase() in MESSAGE_STATE)) {
			return 'usage: stat ' + Object.keys(MESSAGE_STATE).join('|');
		}
		config.receiptStat = args[0].toUpperCase();
		return null;
	},
	drop() {
		for (const session of sessions) {
			session.destroy();
		}
		return null;
	},
	quit() {
		server.close();
		process.exit(0);
	},
};

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
	const words = line.trim().split(/\s+/).filter(Boolean);
	if (!words.length) {
		return;
	}
	const handler = commands[words[0]];
	const problem = handler ? handler(words.slice(1)) : `unknown command ${words[0]}`;
	emit('ack', { command: words[0], ok: !problem, error: problem || undefined });
});
process.on('SIGTERM', () => {
	server.close();
	process.exit(0);
});
