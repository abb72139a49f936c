-- The BOINC server tables a Python toolkit touches, written to be
-- interchangeable with a database made by BOINC's own make_project
-- (db/schema.sql + db/constraints.sql of server 1.4/1.6). Each table says
-- which release it follows ("-- follows:"): all follow server 1.4.7, whose
-- schema Debian's libsched 7.20.5 shares; where 1.6 differs, the note says how.
--
-- Column ORDER matters: BOINC's C++ DB classes read `select *` rows by
-- position (DB_WORKUNIT::db_parse etc.), so every table lists its columns
-- in the order libsched 7.20.5 / server 1.4 expects (tests/oracle checks it).
-- Names are varchar(254) as in 1.4; 1.6 narrows them to 191 for utf8mb4,
-- which only matters for names longer than 191 characters.
--
-- Like BOINC's schema, most columns are NOT NULL without a default: whoever
-- inserts a row states every field (BOINC's db_print does; so do ours).

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table platform (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    name                    varchar(254)    not null,
    user_friendly_name      varchar(254)    not null,
    deprecated              tinyint         not null default 0,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table app (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    name                    varchar(254)    not null,
    min_version             integer         not null default 0,
    deprecated              smallint        not null default 0,
    user_friendly_name      varchar(254)    not null,
    homogeneous_redundancy  smallint        not null default 0,
    weight                  double          not null default 1,
    beta                    smallint        not null default 0,
    target_nresults         smallint        not null default 0,
    min_avg_pfc             double          not null default 1,
    host_scale_check        tinyint         not null default 0,
    homogeneous_app_version tinyint         not null default 0,
    non_cpu_intensive       tinyint         not null default 0,
    locality_scheduling     integer         not null default 0,
    n_size_classes          smallint        not null default 0,
    fraction_done_exact     tinyint         not null default 0,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table app_version (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    appid                   integer         not null,
    version_num             integer         not null,
    platformid              integer         not null,
    xml_doc                 mediumblob,
    min_core_version        integer         not null default 0,
    max_core_version        integer         not null default 0,
    deprecated              tinyint         not null default 0,
    plan_class              varchar(254)    not null default '',
    pfc_n                   double          not null default 0,
    pfc_avg                 double          not null default 0,
    pfc_scale               double          not null default 0,
    expavg_credit           double          not null default 0,
    expavg_time             double          not null default 0,
    beta                    tinyint         not null default 0,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7, defaults included (1.6: name columns varchar(191))
create table user (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    email_addr              varchar(254)    not null,
    name                    varchar(254),
    authenticator           varchar(254),
    country                 varchar(254),
    postal_code             varchar(254),
    total_credit            double          not null,
    expavg_credit           double          not null,
    expavg_time             double          not null,
    global_prefs            blob,
    project_prefs           blob,
    teamid                  integer         not null,
    venue                   varchar(254)    not null,
    url                     varchar(254),
    send_email              smallint        not null,
    show_hosts              smallint        not null,
    posts                   smallint        not null,
    seti_id                 integer         not null,
    seti_nresults           integer         not null,
    seti_last_result_time   integer         not null,
    seti_total_cpu          double          not null,
    signature               varchar(254),
    has_profile             smallint        not null,
    cross_project_id        varchar(254)    not null,
    passwd_hash             varchar(254)    not null,
    email_validated         smallint        not null,
    donated                 smallint        not null,
    login_token             char(32)        not null default '',
    login_token_time        double          not null default 0,
    previous_email_addr     varchar(254)    not null default '',
    email_addr_change_time  double          not null default 0,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7, defaults included (1.6: name varchar(191))
create table team (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    userid                  integer         not null,
    name                    varchar(254)    not null,
    name_lc                 varchar(254),
    url                     varchar(254),
    type                    integer         not null,
    name_html               varchar(254),
    description             text,
    nusers                  integer         not null,
    country                 varchar(254),
    total_credit            double          not null default 0.0,
    expavg_credit           double          not null default 0.0,
    expavg_time             double          not null,
    seti_id                 integer         not null default 0,
    ping_user               integer         not null default 0,
    ping_time               integer unsigned not null default 0,
    joinable                tinyint         not null default 1,
    mod_time                timestamp       default current_timestamp on update current_timestamp,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 (1.6 adds misc)
create table host (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    userid                  integer         not null,
    rpc_seqno               integer         not null,
    rpc_time                integer         not null,
    total_credit            double          not null,
    expavg_credit           double          not null,
    expavg_time             double          not null,
    timezone                integer         not null,
    domain_name             varchar(254),
    serialnum               varchar(254),
    last_ip_addr            varchar(254),
    nsame_ip_addr           integer         not null,
    on_frac                 double          not null,
    connected_frac          double          not null,
    active_frac             double          not null,
    cpu_efficiency          double          not null,
    duration_correction_factor double       not null,
    p_ncpus                 integer         not null,
    p_vendor                varchar(254),
    p_model                 varchar(254),
    p_fpops                 double          not null,
    p_iops                  double          not null,
    p_membw                 double          not null,
    os_name                 varchar(254),
    os_version              varchar(254),
    m_nbytes                double          not null,
    m_cache                 double          not null,
    m_swap                  double          not null,
    d_total                 double          not null,
    d_free                  double          not null,
    d_boinc_used_total      double          not null,
    d_boinc_used_project    double          not null,
    d_boinc_max             double          not null,
    n_bwup                  double          not null,
    n_bwdown                double          not null,
    credit_per_cpu_sec      double          not null,
    venue                   varchar(254)    not null,
    nresults_today          integer         not null,
    avg_turnaround          double          not null,
    host_cpid               varchar(254),
    external_ip_addr        varchar(254),
    max_results_day         integer         not null,
    error_rate              double          not null default 0,
    product_name            varchar(254)    not null,
    gpu_active_frac         double          not null,
    p_ngpus                 integer         not null,
    p_gpu_fpops             double          not null,
    primary key (id)
) engine=InnoDB;

-- Per (host, app version) statistics: runtime estimates, quota, and the
-- consecutive_valid count the validator updates.
-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table host_app_version (
    host_id                 integer         not null,
    app_version_id          integer         not null,
    pfc_n                   double          not null,
    pfc_avg                 double          not null,
    et_n                    double          not null,
    et_avg                  double          not null,
    et_var                  double          not null,
    et_q                    double          not null,
    max_jobs_per_day        integer         not null,
    n_jobs_today            integer         not null,
    turnaround_n            double          not null,
    turnaround_avg          double          not null,
    turnaround_var          double          not null,
    turnaround_q            double          not null,
    consecutive_valid       integer         not null
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table workunit (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    appid                   integer         not null,
    name                    varchar(254)    not null,
    xml_doc                 blob,
    batch                   integer         not null,
    rsc_fpops_est           double          not null,
    rsc_fpops_bound         double          not null,
    rsc_memory_bound        double          not null,
    rsc_disk_bound          double          not null,
    need_validate           smallint        not null,
    canonical_resultid      integer         not null,
    canonical_credit        double          not null,
    transition_time         integer         not null,
    delay_bound             integer         not null,
    error_mask              integer         not null,
    file_delete_state       integer         not null,
    assimilate_state        integer         not null,
    hr_class                integer         not null,
    opaque                  double          not null,
    min_quorum              integer         not null,
    target_nresults         integer         not null,
    max_error_results       integer         not null,
    max_total_results       integer         not null,
    max_success_results     integer         not null,
    result_template_file    varchar(63)     not null,
    priority                integer         not null,
    mod_time                timestamp       default current_timestamp on update current_timestamp,
    rsc_bandwidth_bound     double          not null,
    fileset_id              integer         not null,
    app_version_id          integer         not null,
    transitioner_flags      tinyint         not null,
    size_class              smallint        not null default -1,
    keywords                varchar(254)    not null,
    app_version_num         integer         not null,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table result (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    workunitid              integer         not null,
    server_state            integer         not null,
    outcome                 integer         not null,
    client_state            integer         not null,
    hostid                  integer         not null,
    userid                  integer         not null,
    report_deadline         integer         not null,
    sent_time               integer         not null,
    received_time           integer         not null,
    name                    varchar(254)    not null,
    cpu_time                double          not null,
    xml_doc_in              blob,
    xml_doc_out             blob,
    stderr_out              blob,
    batch                   integer         not null,
    file_delete_state       integer         not null,
    validate_state          integer         not null,
    claimed_credit          double          not null,
    granted_credit          double          not null,
    opaque                  double          not null,
    random                  integer         not null,
    app_version_num         integer         not null,
    appid                   integer         not null,
    exit_status             integer         not null,
    teamid                  integer         not null,
    priority                integer         not null,
    mod_time                timestamp       default current_timestamp on update current_timestamp,
    elapsed_time            double          not null,
    flops_estimate          double          not null,
    app_version_id          integer         not null,
    runtime_outlier         tinyint         not null,
    size_class              smallint        not null default -1,
    peak_working_set_size   double          not null,
    peak_swap_size          double          not null,
    peak_disk_usage         double          not null,
    primary key (id)
) engine=InnoDB;

-- A workunit targeted at a host, user or team (create_work --target_*).
-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table assignment (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    target_id               integer         not null,
    target_type             integer         not null,
    multi                   tinyint         not null,
    workunitid              integer         not null,
    resultid                integer         not null,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 (name/description varchar(255); 1.6 adds keywords)
create table batch (
    id                      serial          primary key,
    user_id                 integer         not null,
    create_time             integer         not null,
    logical_start_time      double          not null,
    logical_end_time        double          not null,
    est_completion_time     double          not null,
    njobs                   integer         not null,
    fraction_done           double          not null,
    nerror_jobs             integer         not null,
    state                   integer         not null,
    completion_time         double          not null,
    credit_estimate         double          not null,
    credit_canonical        double          not null,
    credit_total            double          not null,
    name                    varchar(255)    not null,
    app_id                  integer         not null,
    project_state           integer         not null,
    description             varchar(255)    not null,
    expire_time             double          not null
) engine=InnoDB;

-- Credit per (user, app) and (team, app), kept by the validator.
-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table credit_user (
    userid                  integer         not null,
    appid                   integer         not null,
    njobs                   integer         not null,
    total                   double          not null,
    expavg                  double          not null,
    expavg_time             double          not null,
    credit_type             integer         not null,
    primary key (userid, appid, credit_type)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table credit_team (
    teamid                  integer         not null,
    appid                   integer         not null,
    njobs                   integer         not null,
    total                   double          not null,
    expavg                  double          not null,
    expavg_time             double          not null,
    credit_type             integer         not null,
    primary key (teamid, appid, credit_type)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table user_submit (
    user_id                 integer         not null,
    quota                   double          not null,
    logical_start_time      double          not null,
    submit_all              tinyint         not null,
    manage_all              tinyint         not null,
    max_jobs_in_progress    integer         not null,
    primary key (user_id)
) engine=InnoDB;

-- (user, app) remote submission rights; the row's existence is the right.
-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table user_submit_app (
    user_id                 integer         not null,
    app_id                  integer         not null,
    manage                  tinyint         not null,
    primary key (user_id, app_id)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table msg_from_host (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    hostid                  integer         not null,
    variety                 varchar(254)    not null,
    handled                 smallint        not null,
    xml                     mediumtext,
    primary key (id)
) engine=InnoDB;

-- follows: server 1.4.7 db/schema.sql (the same in libsched 7.20.5)
create table msg_to_host (
    id                      integer         not null auto_increment,
    create_time             integer         not null,
    hostid                  integer         not null,
    variety                 varchar(254)    not null,
    handled                 smallint        not null,
    xml                     mediumtext,
    primary key (id)
) engine=InnoDB;

-- constraints.sql: the unique keys and the indexes BOINC's daemons rely on
-- (the transitioner forces ind_res_st; the validator and assimilator scan
-- wu_val / wu_assim; the file_deleter scans *_filedel).
alter table platform add unique(name);
alter table app add unique(name);
alter table app_version add unique apvp (appid, platformid, version_num, plan_class);
alter table user
    add unique(email_addr),
    add unique(authenticator),
    add index ind_tid (teamid),
    add index user_name(name),
    add index user_tot (total_credit desc),
    add index user_avg (expavg_credit desc);
alter table team
    add unique(name),
    add index team_avg (expavg_credit desc),
    add index team_tot (total_credit desc),
    add index team_userid (userid);
alter table host
    add index host_user (userid),
    add index host_avg (expavg_credit desc),
    add index host_tot (total_credit desc);
alter table host_app_version add unique hap(host_id, app_version_id);
alter table workunit
    add unique(name),
    add index wu_val (appid, need_validate),
    add index wu_timeout (transition_time),
    add index wu_filedel (file_delete_state),
    add index wu_assim (appid, assimilate_state),
    add index wu_batch (batch);
alter table result
    add unique(name),
    add index res_wuid (workunitid),
    add index ind_res_st (server_state, priority),
    add index res_app_state (appid, server_state),
    add index res_filedel (file_delete_state),
    add index res_userid_id (userid, id desc),
    add index res_userid_val (userid, validate_state),
    add index res_hostid_id (hostid, id desc),
    add index res_wu_user (workunitid, userid);
alter table assignment add index asgn_target (target_type, target_id);
alter table batch add index batch_user (user_id);
