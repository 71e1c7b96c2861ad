// Package bruteforce finds password guessing against the services of one host from their log
// lines: guessing from one source, user enumeration, distributed spraying of one account, a
// guessing source that then logs in, and su/sudo password guessing at a local terminal.
//
// It is measured against fail2ban (its sshd filter with maxretry 5 in findtime 10m is the default
// here), sshguard (which counts each attack line, a preauth "Connection closed by authenticating
// user" included) and CrowdSec (whose ssh-bf scenario is a leaky bucket over the same lines).
// Unlike them it counts authentication attempts, not lines: OpenSSH writes up to five lines about
// one password attempt of an unknown user ("Invalid user", PAM's failure, "Failed password",
// "Received disconnect", "Disconnected from invalid user"), and a line-counting tool reaches its
// threshold on the second attempt. Here each line carries a Kind and the lines of one connection
// (the source port, or the user for services that log no port) count as the attempts they report
// (see Kind). It also reports what they do not: enumeration, spraying below every per-source
// threshold, and a success after guessing.
//
// What it is: a parser (ParseLine for syslog-style lines, ParseMessage for journald entries,
// Parser for either with state across lines) that turns lines of sshd, vsftpd, ProFTPD,
// MySQL/MariaDB, PostgreSQL, Dovecot, Postfix SASL, su and sudo into Events without regular
// expressions and without allocating for lines it rejects; and a Detector that turns Events into
// finding.Findings with bounded memory. Time comes only from the events, so a log replayed an
// hour or a year later gives the same findings; the output depends only on the input order.
//
// What it is not: it reads no files and no journal, blocks nothing and keeps no state on disk
// (the agent's collectors, responders and spool do); it does not judge whether a login is unusual
// (the login engine does); and it trusts only the parts of a line a service writes itself: a
// user name that contains " from 6.6.6.6 port 22" cannot make it blame 6.6.6.6, because every
// source is taken from the right of the attacker-controlled text.
//
// # Outcomes of OpenSSH lines
//
//   - Failed password|keyboard-interactive/pam for [invalid user] U from IP port P ssh2:
//     Failure (InvalidUser for "invalid user"), one attempt.
//   - Failed publickey|none|hostbased for ...: Failure/InvalidUser for the connection, not an
//     attempt: clients offer several keys and probe "none" before a password, and a key is not
//     guessed.
//   - Invalid user U from IP [port P], User U from IP not allowed because ..., ROOT LOGIN REFUSED:
//     InvalidUser/Failure for the connection.
//   - error: PAM: Authentication failure for [illegal user] U from HOST, pam_unix(sshd:auth):
//     authentication failure; ... rhost=IP user=U, PAM N more authentication failures: Failure
//     for the connection (they repeat what a "Failed" line says; HOST must be an address).
//   - error: maximum authentication attempts exceeded for ..., Disconnecting authenticating|invalid
//     user U IP port P: Too many authentication failures [preauth]: Blocked.
//   - Connection closed by|reset by|Disconnected from authenticating|invalid user U IP port P
//     [preauth]: Failure/InvalidUser for the connection, as sshguard counts them. The same lines
//     without a user (a client that left before naming one) are not counted.
//   - Received disconnect from IP port P:N: ... [preauth], Did not receive identification string
//     from IP, banner exchange: Connection from IP port P: invalid format, Unable to negotiate
//     with IP port P, Bad protocol version identification ... from IP: probes, Failure with no
//     user for the connection.
//   - Accepted METHOD for U from IP port P ssh2: Success.
//
// # Other services
//
//   - vsftpd: "[U] FAIL LOGIN: Client "IP"" (attempt) and "OK LOGIN" (success), through syslog or
//     in vsftpd.log ("Sat Dec  4 20:01:02 2026 [pid 1] [U] FAIL LOGIN: ..."); PAM's lines count
//     for the connection.
//   - ProFTPD: "HOST (NAME[IP]) - USER U (Login failed): ..." (attempt), "USER U: no such user
//     found from ..." (InvalidUser), "USER U: Login successful.", "Maximum login attempts (N)
//     exceeded" (Blocked); through syslog or in proftpd.log.
//   - MySQL/MariaDB: "Access denied for user 'U'@'IP' (using password: YES|NO)" anywhere in the
//     message, through syslog, the journal or the error log (MySQL 5.7/8 and MariaDB 10.x
//     formats). 'localhost' and host names cannot be attributed and are dropped.
//   - PostgreSQL: the server's own log with Debian's log_line_prefix '%m [%p] %q%u@%d ' (or any
//     prefix that starts with %m or %t and then [%p]), or syslog. A failure
//     ("password authentication failed for user", "role ... does not exist") carries no address:
//     it is joined by process ID to the earlier "connection received: host=IP port=P" of the same
//     backend, so log_connections must be on, and only Parser (not the stateless ParseLine) keeps
//     that state. "no pg_hba.conf entry for host "IP"" carries its own. %h in the prefix is not
//     used: it follows %u in most prefixes, where a role name could imitate it.
//   - Dovecot: the auth process's "pam(U,IP,<s>): pam_authenticate() failed", "passwd-file(U,IP):
//     Password mismatch", "... unknown user" (attempts, with auth_verbose=yes) and the login
//     process's "Disconnected (auth failed, N attempts in S secs): user=<U>, method=M, rip=IP"
//     (N attempts, 2.2 and 2.3 wordings), "Login: user=<U>, ..., rip=IP" (success).
//   - Postfix: "warning: NAME[IP]: SASL METHOD authentication failed: ...[, sasl_username=U]"
//     from any .../smtpd, and "client=NAME[IP], sasl_method=M, sasl_username=U" (success).
//   - su: "FAILED SU (to U) BY on TTY" (util-linux), "FAILED su for U by BY" (shadow), and
//     pam_unix(su:auth|su-l:auth); success "(to U) BY on TTY", "Successful su for U by BY".
//   - sudo: pam_unix(sudo:auth) (one attempt each) and "BY : N incorrect password attempts ;
//     TTY=T ; ... ; USER=U ; COMMAND=..."; success "BY : TTY=T ; ... ; USER=U ; COMMAND=...".
//
// Timestamps: RFC 3164 ("Dec  4 20:01:02", in the location given, with the year given or, for
// Parser, rolled over at New Year), RFC 3339 as rsyslog's file format writes it, RFC 5424 with
// its "<PRI>1 " header, and the services' own file formats above. Times with an offset become
// UTC instants.
//
// # Rules
//
//   - bruteforce.password-guessing (high, T1110.001): Config.FailuresPerSource failures from one
//     address within its window (default 5 in 10m, fail2ban's maxretry and findtime).
//   - bruteforce.user-enumeration (high, T1110.001): Config.EnumerationUsers distinct users failing
//     from one address within the window (default 5 in 10m).
//   - bruteforce.distributed (high, T1110.003): Config.DistributedSources distinct addresses failing
//     on one existing account within the window (default 10 in 1h), counting only addresses below
//     both per-source thresholds and not ones that logged in as that user. Failures for users that
//     do not exist are enumeration's business, not spraying.
//   - bruteforce.succeeded (critical, T1110.001 and T1078): a login accepted from an address that
//     crossed the guessing or enumeration threshold within Config.SuccessLookback (default 1h).
//   - bruteforce.local-auth (high, T1110.001): Config.LocalFailures su/sudo failures by one user at
//     one terminal (default 5 in 10m); a later success there is bruteforce.succeeded.
//
// A rule fires when its count is reached (a count at exactly the window's length apart still
// counts), and fires again for the same key at most once per window while the attack goes on,
// with the updated count; the console folds these into one event by DedupKey (the address; the
// account for distributed; "user@tty" for local). An attack is over when its key has been quiet
// for a window. A login accepted from an address below the thresholds forgives its failures when
// every user that failed from there lately is the one who logged in: that is a user who
// mistyped, while a guesser cannot reset its count with an anonymous FTP login.
//
// Memory is bounded by Config.MaxTracked per table, with least-recently-seen eviction; see
// Config for what an entry costs.
package bruteforce
