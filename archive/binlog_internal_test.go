package archive

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func TestBinlogKeys(t *testing.T) {
	g := NewWithT(t)
	span := BinlogSpan{First: time.Unix(1796294353, 0), Last: time.Unix(1796294360, 0)}
	key := binlogKey("3e11fa47-71ca-11e1-9e33-c80aa9429562", "binlog.000042", span)
	g.Expect(key).To(Equal("binlog/3e11fa47-71ca-11e1-9e33-c80aa9429562/binlog.000042_1796294353_1796294360.gz"))
	f, ok := parseBinlogKey(key)
	g.Expect(ok).To(BeTrue())
	g.Expect(f.Server).To(Equal("3e11fa47-71ca-11e1-9e33-c80aa9429562"))
	g.Expect(f.Name).To(Equal("binlog.000042"))
	g.Expect(f.Seq).To(Equal(uint64(42)))
	g.Expect(f.First).To(Equal(span.First.UTC()))
	g.Expect(f.Last).To(Equal(span.Last.UTC()))
	f, ok = parseBinlogKey(binlogKey("s", "my_host-bin.000007", span))
	g.Expect(ok).To(BeTrue())
	g.Expect(f.Name).To(Equal("my_host-bin.000007"), "an underscore in the base name")
	for _, bad := range []string{"wal/000000010000000000000001.gz", "binlog/s/binlog.000001.gz", "binlog//binlog.000001_1_2.gz",
		"binlog/s/binlog_1_2.gz", "binlog/s/binlog.000001_x_2.gz", "binlog/s/binlog.000001_1_2"} {
		_, ok := parseBinlogKey(bad)
		g.Expect(ok).To(BeFalse(), bad)
	}
}

// The header comments of mysqldump 8.4 with --source-data=2 and
// --set-gtid-purged=COMMENTED (the GTID line as MySQL's dump code writes it
// in that mode, a set per server separated by ",\n" as in real dumps; not
// run here: no MySQL), and of mariadb-dump 10.11 with --master-data=2 --gtid
// (as the engine test runs it).
const (
	mysqlDumpHead = `-- MySQL dump 10.13  Distrib 8.4.3, for Linux (x86_64)
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
SET @MYSQLDUMP_TEMP_LOG_BIN = @@SESSION.SQL_LOG_BIN;
SET @@SESSION.SQL_LOG_BIN= 0;

--
-- GTID state at the beginning of the backup
--

/* SET @@GLOBAL.GTID_PURGED='+3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23,
5b4f0e2a-9b1c-11ee-8c90-0242ac120002:1-5';*/

--
-- Position to start replication or point-in-time recovery from
--

-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000004', SOURCE_LOG_POS=197;
`
	mariaDumpHead = `-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Position to start replication or point-in-time recovery from
--

-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000002', MASTER_LOG_POS=379;

--
-- GTID to start replication from
--

-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;
-- SET GLOBAL gtid_slave_pos='0-1-16';
`
)

func TestParseDumpHeader(t *testing.T) {
	g := NewWithT(t)
	file, pos, gtids, err := parseDumpHeader([]byte(mysqlDumpHead))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(file).To(Equal("binlog.000004"))
	g.Expect(pos).To(Equal(int64(197)))
	g.Expect(gtids).To(Equal("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23,5b4f0e2a-9b1c-11ee-8c90-0242ac120002:1-5"), "joined across the line break")

	file, pos, gtids, err = parseDumpHeader([]byte(mariaDumpHead))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(file).To(Equal("binlog.000002"))
	g.Expect(pos).To(Equal(int64(379)))
	g.Expect(gtids).To(Equal("0-1-16"))

	_, _, gtids, err = parseDumpHeader([]byte("SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'a:1-5';\n-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='b.000001', SOURCE_LOG_POS=4;\n"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(gtids).To(Equal("a:1-5"), "--set-gtid-purged=ON's spelling")

	_, _, _, err = parseDumpHeader([]byte("-- MySQL dump\nCREATE TABLE t (id int);\n"))
	g.Expect(err).To(MatchError(ContainSubstring("records no binary log position")))
}

// event is a binary log event of type typ at unix time ts with body bytes.
func event(ts uint32, typ byte, body int) []byte {
	e := make([]byte, binlogHeaderSize+body)
	binary.LittleEndian.PutUint32(e[0:4], ts)
	e[4] = typ
	binary.LittleEndian.PutUint32(e[9:13], uint32(len(e)))
	return e
}

func TestReadBinlogSpan(t *testing.T) {
	g := NewWithT(t)
	file := append([]byte{}, binlogMagic...)
	file = append(file, event(100, 15, 80)...)  // format description
	file = append(file, event(100, 163, 10)...) // MariaDB gtid list
	empty := len(file)
	span, err := ReadBinlogSpan(bytes.NewReader(file), int64(len(file)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(span.Transactions).To(BeFalse(), "only the events every file starts with")
	g.Expect(span.End).To(Equal(int64(empty)))

	file = append(file, event(105, 162, 20)...) // MariaDB GTID
	file = append(file, event(0, 4, 10)...)     // an event without a time
	file = append(file, event(107, 30, 40)...)  // write rows
	complete := len(file)
	file = append(file, event(109, 16, 12)[:20]...) // half an xid event
	span, err = ReadBinlogSpan(bytes.NewReader(file), int64(len(file)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(span.Transactions).To(BeTrue())
	g.Expect(span.First).To(Equal(time.Unix(100, 0).UTC()))
	g.Expect(span.Last).To(Equal(time.Unix(107, 0).UTC()), "the incomplete event is not counted")
	g.Expect(span.End).To(Equal(int64(complete)))

	_, err = ReadBinlogSpan(bytes.NewReader([]byte("not a binlog")), 12)
	g.Expect(err).To(MatchError(ContainSubstring("no magic number")))
	bad := append(append([]byte{}, binlogMagic...), event(100, 15, 0)...)
	binary.LittleEndian.PutUint32(bad[4+9:4+13], 3)
	_, err = ReadBinlogSpan(bytes.NewReader(bad), int64(len(bad)))
	g.Expect(err).To(MatchError(ContainSubstring("less than a header")))
}
