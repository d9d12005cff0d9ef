"""Errors a user can cause. Each carries a Chinese message naming the field and the reason."""

import errno


class DomainError(Exception):
    """A rejected input: nothing was written."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


# Why a file could not be opened, read or written, in Chinese (Python's strerror is English).
OS_REASONS = {
    errno.ENOENT: "文件或目录不存在",
    errno.EISDIR: "这是一个目录，不是文件",
    errno.ENOTDIR: "路径中有一段不是目录",
    errno.EACCES: "没有权限",
    errno.EPERM: "没有权限",
    errno.EROFS: "文件系统只读",
    errno.ENOSPC: "磁盘空间不足",
    errno.EDQUOT: "超出磁盘配额",
    errno.ENAMETOOLONG: "文件名过长",
    errno.EEXIST: "文件已存在",
    errno.EIO: "读写出错（输入输出错误）",
}


def os_reason(error: OSError) -> str:
    return OS_REASONS.get(error.errno or 0) or error.strerror or str(error)
