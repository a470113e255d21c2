<?php
// The real generator for tests/postfixadmin*.rs: PostfixAdmin's own pacrypt() from Debian's
// postfixadmin package, with $CONF['encrypt'] = argv[1] (and argv[2] as
// authlib_default_flavor for encrypt=authlib). The password comes on stdin, as is.
// encrypt=mysql_encrypt runs ENCRYPT() in the database named by the environment
// (PFA_DB_HOST, PFA_DB_PORT, PFA_DB_USER, PFA_DB_PASSWORD, PFA_DB_NAME), as PostfixAdmin does.
// Prints the value PostfixAdmin would store, without a newline.
define('POSTFIXADMIN', 1);
define('POSTFIXADMIN_CLI', 1);
$root = getenv('PFA_ROOT') ?: '/usr/share/postfixadmin';
require_once "$root/model/Config.php";
require_once "$root/functions.inc.php";

global $CONF;
$CONF = [
    'encrypt' => $argv[1],
    'authlib_default_flavor' => $argv[2] ?? 'md5raw',
    'dovecotpw' => 'doveadm pw',
    'database_type' => 'mysqli',
    'database_host' => getenv('PFA_DB_HOST') ?: 'localhost',
    'database_port' => getenv('PFA_DB_PORT') ?: '3306',
    'database_user' => getenv('PFA_DB_USER') ?: 'postfixadmin',
    'database_password' => getenv('PFA_DB_PASSWORD') ?: '',
    'database_name' => getenv('PFA_DB_NAME') ?: 'postfixadmin',
    'database_socket' => getenv('PFA_DB_SOCKET') ?: '',
    'database_prefix' => '',
    'database_use_ssl' => false,
    'database_tables' => [],
];
Config::getInstance()->setAll($CONF);

$password = stream_get_contents(STDIN);
echo pacrypt($password);
