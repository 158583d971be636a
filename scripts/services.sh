# Sourced by scripts/test and .ci/run: makes sure the services the tests need are up,
# installing them from Debian's packages on a fresh machine. Fails loudly otherwise.

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

mariadb_tcp_ok() {
    mariadb -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1
}

ensure_mariadb() {
    if mariadb_tcp_ok; then
        mariadb -h127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
        return 0
    fi
    command -v mariadbd >/dev/null 2>&1 || { log "installing mariadb-server"; apt_install mariadb-server mariadb-client; }
    if ! mariadb-admin -uroot ping >/dev/null 2>&1; then
        log "starting MariaDB"
        install -d -o mysql -g mysql -m 0755 /run/mysqld /var/log/mysql
        setsid nohup mysqld_safe --skip-syslog --log-error=/var/log/mysql/error.log >/dev/null 2>&1 </dev/null &
        for _ in $(seq 120); do mariadb-admin -uroot ping >/dev/null 2>&1 && break; sleep 0.5; done
    fi
    mariadb-admin -uroot ping >/dev/null 2>&1 || { log "FATAL: MariaDB did not start (see /var/log/mysql/error.log)"; return 1; }
    if ! mariadb_tcp_ok; then
        # A fresh Debian install lets root in over the socket only.
        mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
    fi
    mariadb -h127.0.0.1 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
    mariadb_tcp_ok || { log "FATAL: MariaDB is up but root@127.0.0.1 cannot log in"; return 1; }
    log "MariaDB ready"
}

memcached_ok() {
    # `version` is the cheapest command memcached answers.
    # The braces keep 2>/dev/null to the connect: on `exec` itself it would silence
    # the calling script's stderr from here on.
    { exec 3<>/dev/tcp/127.0.0.1/11211; } 2>/dev/null || return 1
    printf 'version\r\n' >&3
    local reply
    read -r -t 2 reply <&3 || reply=""
    exec 3>&-
    [[ "$reply" == VERSION* ]]
}

ensure_memcached() {
    memcached_ok && return 0
    command -v memcached >/dev/null 2>&1 || { log "installing memcached"; apt_install memcached; }
    log "starting memcached"
    memcached -d -u memcache -l 127.0.0.1 -p 11211 -m 64
    for _ in $(seq 40); do memcached_ok && break; sleep 0.25; done
    memcached_ok || { log "FATAL: memcached did not start"; return 1; }
    log "memcached ready"
}

ensure_php() {
    # php-cli runs the README's PHP client (tests/api/php_client.rs); the PHP client
    # library in clients/php needs Guzzle 7 (with curl) and its PHPUnit suite phpunit
    # (tests/clients), the README's PHP-FPM example APCu through symfony/cache, and the
    # linters CI holds it to (phpcs, phpmd), all from Debian's packages.
    local wanted=(php-cli php-curl php-mbstring php-xml phpunit php-guzzlehttp-guzzle php-psr-log php-psr-simple-cache php-apcu php-symfony-cache php-codesniffer phpmd) missing=() p
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}" || { log "FATAL: could not install ${missing[*]}"; return 1; }
    fi
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || { log "FATAL: $p did not install"; return 1; }
    done
    command -v php >/dev/null 2>&1 || { log "FATAL: php-cli is installed but php is not on PATH"; return 1; }
    command -v phpunit >/dev/null 2>&1 || { log "FATAL: phpunit is installed but not on PATH"; return 1; }
    command -v phpcs >/dev/null 2>&1 || { log "FATAL: php-codesniffer is installed but phpcs is not on PATH"; return 1; }
    command -v phpmd >/dev/null 2>&1 || { log "FATAL: phpmd is installed but not on PATH"; return 1; }
    [ -f /usr/share/php/GuzzleHttp/autoload.php ] \
        || { log "FATAL: php-guzzlehttp-guzzle is installed but /usr/share/php/GuzzleHttp/autoload.php is missing"; return 1; }
    php -r 'exit(extension_loaded("curl") && extension_loaded("mbstring") ? 0 : 1);' \
        || { log "FATAL: php's curl or mbstring extension is not loaded"; return 1; }
    php -d apc.enable_cli=1 -r 'exit(function_exists("apcu_store") ? 0 : 1);' \
        || { log "FATAL: php-apcu is installed but APCu is not loaded"; return 1; }
}

ensure_operations_tools() {
    # promtool (the alert rules' tests) and headless Chromium (Swagger UI), for
    # tests/operations.
    local missing=()
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    command -v promtool >/dev/null 2>&1 || { log "FATAL: promtool did not install (Debian package prometheus)"; return 1; }
    command -v chromium >/dev/null 2>&1 || { log "FATAL: chromium did not install"; return 1; }
}
