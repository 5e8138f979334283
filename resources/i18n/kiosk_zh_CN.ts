<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>AuditTab</name>
    <message>
        <source>Time</source>
        <translation>时间</translation>
    </message>
    <message>
        <source>By</source>
        <translation>操作者</translation>
    </message>
    <message>
        <source>Action</source>
        <translation>操作</translation>
    </message>
    <message>
        <source>Item</source>
        <translation>商品</translation>
    </message>
    <message>
        <source>Before → after</source>
        <translation>修改前 → 修改后</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>刷新</translation>
    </message>
    <message>
        <source>Back up…</source>
        <translation>备份…</translation>
    </message>
    <message>
        <source>Backing up…</source>
        <translation>正在备份…</translation>
    </message>
    <message>
        <source>Backed up to %1</source>
        <translation>已备份到 %1</translation>
    </message>
    <message>
        <source>Not backed up: %1</source>
        <translation>备份失败：%1</translation>
    </message>
    <message>
        <source>Cashier</source>
        <translation>收银员</translation>
    </message>
    <message>
        <source>Staff</source>
        <translation>店员</translation>
    </message>
    <message>
        <source>Command line</source>
        <translation>命令行</translation>
    </message>
    <message>
        <source>System</source>
        <translation>系统</translation>
    </message>
    <message>
        <source>Price changed</source>
        <translation>改价</translation>
    </message>
    <message>
        <source>Product added</source>
        <translation>新增商品</translation>
    </message>
    <message>
        <source>Product changed</source>
        <translation>修改商品</translation>
    </message>
    <message>
        <source>Product deleted</source>
        <translation>删除商品</translation>
    </message>
    <message>
        <source>Put on sale</source>
        <translation>上架</translation>
    </message>
    <message>
        <source>Taken off sale</source>
        <translation>下架</translation>
    </message>
    <message>
        <source>Views enrolled</source>
        <translation>录入商品图片</translation>
    </message>
    <message>
        <source>Pictures added</source>
        <translation>添加图片</translation>
    </message>
    <message>
        <source>Gallery imported</source>
        <translation>导入图库</translation>
    </message>
    <message>
        <source>Pictures re-embedded</source>
        <translation>重新提取图片特征</translation>
    </message>
    <message>
        <source>Item corrected</source>
        <translation>更正商品</translation>
    </message>
    <message>
        <source>Item removed</source>
        <translation>移除商品</translation>
    </message>
    <message>
        <source>Quantity set</source>
        <translation>修改数量</translation>
    </message>
    <message>
        <source>Staff PIN set</source>
        <translation>设置员工密码</translation>
    </message>
    <message>
        <source>Staff mode locked</source>
        <translation>员工模式已锁定</translation>
    </message>
    <message>
        <source>Backup</source>
        <translation>备份</translation>
    </message>
    <message>
        <source>Restored from a backup</source>
        <translation>从备份恢复</translation>
    </message>
    <message>
        <source>Look-alike confirmed as a new product</source>
        <translation>确认相似商品为新商品</translation>
    </message>
    <message>
        <source>Cashier added</source>
        <translation>新增收银员</translation>
    </message>
    <message>
        <source>Cashier enabled</source>
        <translation>启用收银员</translation>
    </message>
    <message>
        <source>Cashier disabled</source>
        <translation>停用收银员</translation>
    </message>
    <message>
        <source>Cashier code changed</source>
        <translation>修改收银员密码</translation>
    </message>
    <message>
        <source>Cashier badge changed</source>
        <translation>修改收银员工牌</translation>
    </message>
    <message>
        <source>Cashier codes locked</source>
        <translation>收银员密码已锁定</translation>
    </message>
    <message>
        <source>price</source>
        <translation>价格</translation>
    </message>
    <message>
        <source>name</source>
        <translation>名称</translation>
    </message>
    <message>
        <source>barcode</source>
        <translation>条码</translation>
    </message>
    <message>
        <source>on sale</source>
        <translation>在售</translation>
    </message>
    <message>
        <source>quantity</source>
        <translation>数量</translation>
    </message>
    <message>
        <source>pictures</source>
        <translation>图片</translation>
    </message>
    <message>
        <source>PIN set</source>
        <translation>已设密码</translation>
    </message>
    <message>
        <source>lockouts</source>
        <translation>锁定次数</translation>
    </message>
    <message>
        <source>locked (s)</source>
        <translation>锁定（秒）</translation>
    </message>
    <message>
        <source>files</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>products</source>
        <translation>商品</translation>
    </message>
    <message>
        <source>schema version</source>
        <translation>数据库版本</translation>
    </message>
    <message>
        <source>looks like</source>
        <translation>相似商品</translation>
    </message>
    <message>
        <source>enabled</source>
        <translation>启用</translation>
    </message>
    <message>
        <source>badge</source>
        <translation>工牌</translation>
    </message>
    <message>
        <source>code set</source>
        <translation>已设密码</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>未定价</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>是</translation>
    </message>
    <message>
        <source>no</source>
        <translation>否</translation>
    </message>
    <message>
        <source>Back up to folder</source>
        <translation>备份到文件夹</translation>
    </message>
    <message>
        <source>View learned from an answer</source>
        <translation>从回答中学到的视图</translation>
    </message>
    <message>
        <source>Learned view waiting for approval</source>
        <translation>学到的视图待审核</translation>
    </message>
    <message>
        <source>Learned view approved</source>
        <translation>学到的视图已批准</translation>
    </message>
    <message>
        <source>Learned view undone</source>
        <translation>学到的视图已撤销</translation>
    </message>
    <message>
        <source>Learned view deleted</source>
        <translation>学到的视图已删除</translation>
    </message>
    <message>
        <source>Learned view dropped (view budget)</source>
        <translation>学到的视图已舍弃（视图上限）</translation>
    </message>
    <message>
        <source>Answer not learned (limit per cashier)</source>
        <translation>回答未学习（超出收银员限额）</translation>
    </message>
    <message>
        <source>Operating point calibrated</source>
        <translation>工作点已校准</translation>
    </message>
    <message>
        <source>Recognition model replaced (retrained)</source>
        <translation>识别模型已更换（重新训练）</translation>
    </message>
</context>
<context>
    <name>CameraTab</name>
    <message>
        <source>starting</source>
        <translation>正在启动</translation>
    </message>
    <message>
        <source>live</source>
        <translation>正常</translation>
    </message>
    <message>
        <source>disconnected</source>
        <translation>已断开</translation>
    </message>
    <message>
        <source>no usable picture</source>
        <translation>无可用画面</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <source>Camera: %1 (%2)</source>
        <translation>摄像头：%1（%2）</translation>
    </message>
    <message>
        <source>Demo camera (built-in test pictures)</source>
        <translation>演示摄像头（内置测试画面）</translation>
    </message>
    <message>
        <source>USB camera number</source>
        <translation>USB 摄像头编号</translation>
    </message>
    <message>
        <source>Video file or picture folder</source>
        <translation>视频文件或图片文件夹</translation>
    </message>
    <message>
        <source>Browse…</source>
        <translation>浏览…</translation>
    </message>
    <message>
        <source>Use this camera</source>
        <translation>使用此摄像头</translation>
    </message>
    <message>
        <source>Camera switched.</source>
        <translation>已切换摄像头。</translation>
    </message>
    <message>
        <source>Camera switched, but not saved in the settings: %1</source>
        <translation>已切换摄像头，但未能保存到设置：%1</translation>
    </message>
    <message>
        <source>Opening the camera…</source>
        <translation>正在打开摄像头…</translation>
    </message>
    <message>
        <source>Could not open the camera: %1</source>
        <translation>无法打开摄像头：%1</translation>
    </message>
    <message>
        <source>demo camera</source>
        <translation>演示摄像头</translation>
    </message>
    <message>
        <source>USB camera %1</source>
        <translation>USB 摄像头 %1</translation>
    </message>
    <message>
        <source>Choose a video file</source>
        <translation>选择视频文件</translation>
    </message>
</context>
<context>
    <name>CashierCodeDialog</name>
    <message>
        <source>Cashier</source>
        <translation>收银员</translation>
    </message>
    <message>
        <source>Cashier: enter your code</source>
        <translation>收银员：请输入密码</translation>
    </message>
    <message>
        <source>OK</source>
        <translation>确定</translation>
    </message>
    <message>
        <source>Delete the last digit</source>
        <translation>删除最后一位</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Wrong code, try again.</source>
        <translation>密码错误，请重试。</translation>
    </message>
    <message>
        <source>A cashier code has %1 to %2 digits.</source>
        <translation>收银员密码为 %1 到 %2 位数字。</translation>
    </message>
    <message>
        <source>Too many wrong codes: locked for %1 s.</source>
        <translation>密码错误次数过多：已锁定 %1 秒。</translation>
    </message>
</context>
<context>
    <name>CashierNeededDialog</name>
    <message>
        <source>Cashier needed</source>
        <translation>需要收银员</translation>
    </message>
    <message>
        <source>Only a cashier can change an item.</source>
        <translation>只有收银员可以修改商品。</translation>
    </message>
    <message>
        <source>Press Call the cashier and a cashier will come to help you. Cashiers: enter your code, or show your cashier badge to the camera.</source>
        <translation>请按“呼叫收银员”，收银员会来帮您。收银员：请输入您的密码，或把工牌给摄像头看。</translation>
    </message>
    <message>
        <source>Or choose the right one yourself – these cost the same:</source>
        <translation>或者您自己选对的那一个——它们价格相同：</translation>
    </message>
    <message>
        <source>Call the cashier</source>
        <translation>呼叫收银员</translation>
    </message>
    <message>
        <source>Cashier code</source>
        <translation>收银员密码</translation>
    </message>
    <message>
        <source>Back</source>
        <translation>返回</translation>
    </message>
    <message>
        <source>Not recognised</source>
        <translation>无法识别</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>无价格</translation>
    </message>
    <message>
        <source>This item can no longer be changed here: please call the cashier.</source>
        <translation>这件商品现在不能在这里修改：请呼叫收银员。</translation>
    </message>
</context>
<context>
    <name>CashiersTab</name>
    <message>
        <source>ID</source>
        <translation>工号</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>姓名</translation>
    </message>
    <message>
        <source>Active</source>
        <translation>启用</translation>
    </message>
    <message>
        <source>Badge</source>
        <translation>工牌</translation>
    </message>
    <message>
        <source>Add a cashier</source>
        <translation>新增收银员</translation>
    </message>
    <message>
        <source>ID (such as C001)</source>
        <translation>工号（如 C001）</translation>
    </message>
    <message>
        <source>Code (4-8 digits)</source>
        <translation>密码（4-8 位数字）</translation>
    </message>
    <message>
        <source>Code again</source>
        <translation>再次输入密码</translation>
    </message>
    <message>
        <source>Badge (optional)</source>
        <translation>工牌（可选）</translation>
    </message>
    <message>
        <source>scan the card's barcode or QR code, or type its text</source>
        <translation>扫描工牌上的条码或二维码，或输入其内容</translation>
    </message>
    <message>
        <source>Add cashier</source>
        <translation>添加收银员</translation>
    </message>
    <message>
        <source>New code…</source>
        <translation>设置新密码…</translation>
    </message>
    <message>
        <source>Cashier %1 added.</source>
        <translation>已添加收银员 %1。</translation>
    </message>
    <message>
        <source>Cashier %1 disabled: their code and badge no longer work.</source>
        <translation>已停用收银员 %1：其密码和工牌不再有效。</translation>
    </message>
    <message>
        <source>Cashier %1 enabled again.</source>
        <translation>已重新启用收银员 %1。</translation>
    </message>
    <message>
        <source>New code set for cashier %1.</source>
        <translation>已为收银员 %1 设置新密码。</translation>
    </message>
    <message>
        <source>The two codes differ: type them again.</source>
        <translation>两次输入的密码不一致，请重新输入。</translation>
    </message>
    <message>
        <source>A cashier code has 4 to 8 digits.</source>
        <translation>收银员密码为 4 到 8 位数字。</translation>
    </message>
    <message>
        <source>Not changed: %1</source>
        <translation>未修改：%1</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>是</translation>
    </message>
    <message>
        <source>no</source>
        <translation>否</translation>
    </message>
    <message>
        <source>Disable</source>
        <translation>停用</translation>
    </message>
    <message>
        <source>Enable</source>
        <translation>启用</translation>
    </message>
    <message>
        <source>New code for cashier %1 (4-8 digits):</source>
        <translation>收银员 %1 的新密码（4-8 位数字）：</translation>
    </message>
    <message>
        <source>The same code again:</source>
        <translation>再次输入同一密码：</translation>
    </message>
</context>
<context>
    <name>CatalogueTab</name>
    <message>
        <source>Filter by name, SKU or barcode</source>
        <translation>按名称、货号或条码筛选</translation>
    </message>
    <message>
        <source>Picture</source>
        <translation>图片</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>名称</translation>
    </message>
    <message>
        <source>SKU</source>
        <translation>货号</translation>
    </message>
    <message>
        <source>Price</source>
        <translation>价格</translation>
    </message>
    <message>
        <source>Views</source>
        <translation>图片数</translation>
    </message>
    <message>
        <source>On sale</source>
        <translation>在售</translation>
    </message>
    <message>
        <source>Change price</source>
        <translation>修改价格</translation>
    </message>
    <message>
        <source>Delete product</source>
        <translation>删除商品</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>未定价</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>是</translation>
    </message>
    <message>
        <source>no</source>
        <translation>否</translation>
    </message>
    <message>
        <source>Take off sale</source>
        <translation>下架</translation>
    </message>
    <message>
        <source>Put on sale</source>
        <translation>上架</translation>
    </message>
    <message>
        <source>Price changed.</source>
        <translation>价格已修改。</translation>
    </message>
    <message>
        <source>New price of %1 (yuan):</source>
        <translation>%1 的新价格（元）：</translation>
    </message>
    <message>
        <source>Taken off sale.</source>
        <translation>已下架。</translation>
    </message>
    <message>
        <source>On sale again.</source>
        <translation>已重新上架。</translation>
    </message>
    <message>
        <source>Deleted %1.</source>
        <translation>已删除 %1。</translation>
    </message>
    <message>
        <source>Delete %1 (%2) and all its pictures? This cannot be undone.</source>
        <translation>删除 %1（%2）及其所有图片？此操作无法撤销。</translation>
    </message>
</context>
<context>
    <name>CorrectionDialog</name>
    <message>
        <source>Correct an item</source>
        <translation>更正商品</translation>
    </message>
    <message>
        <source>Which product is this?</source>
        <translation>这是哪件商品？</translation>
    </message>
    <message>
        <source>Search by name, SKU or barcode</source>
        <translation>按名称、货号或条码搜索</translation>
    </message>
    <message>
        <source>Search results</source>
        <translation>搜索结果</translation>
    </message>
    <message>
        <source>Best matches</source>
        <translation>最相似的商品</translation>
    </message>
    <message>
        <source>Quantity</source>
        <translation>数量</translation>
    </message>
    <message>
        <source>Remove item</source>
        <translation>移除商品</translation>
    </message>
    <message>
        <source>Done</source>
        <translation>完成</translation>
    </message>
    <message>
        <source>This item is no longer on the tray.</source>
        <translation>这件商品已不在托盘上。</translation>
    </message>
    <message>
        <source>Not recognised yet: choose the product below.</source>
        <translation>尚未识别：请在下方选择商品。</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>未定价</translation>
    </message>
    <message>
        <source>Now: %1 (%2)</source>
        <translation>当前：%1（%2）</translation>
    </message>
    <message>
        <source>Read on the pack: %1</source>
        <translation>包装上读到：%1</translation>
    </message>
    <message>
        <source>Barcode on the pack: %1, which no product on sale has</source>
        <translation>包装上的条码：%1，没有在售商品使用此条码</translation>
    </message>
    <message>
        <source>match %1%</source>
        <translation>相似度 %1%</translation>
    </message>
    <message>
        <source>Nothing found</source>
        <translation>没有找到</translation>
    </message>
    <message>
        <source>Cannot change the item</source>
        <translation>无法更改商品</translation>
    </message>
    <message>
        <source>Cannot change the quantity</source>
        <translation>无法更改数量</translation>
    </message>
    <message>
        <source>Cannot remove the item</source>
        <translation>无法移除商品</translation>
    </message>
    <message>
        <source>The cashier session has ended: enter the cashier code again or show the badge to the camera.</source>
        <translation>收银员操作已结束：请重新输入收银员密码，或把工牌给摄像头看。</translation>
    </message>
    <message>
        <source>That did not work: please try again or choose another product.</source>
        <translation>没有成功：请重试，或选择其他商品。</translation>
    </message>
</context>
<context>
    <name>EnrolTab</name>
    <message>
        <source>Product name</source>
        <translation>商品名称</translation>
    </message>
    <message>
        <source>SKU</source>
        <translation>货号</translation>
    </message>
    <message>
        <source>Price (yuan)</source>
        <translation>价格（元）</translation>
    </message>
    <message>
        <source>Barcode (optional)</source>
        <translation>条码（可选）</translation>
    </message>
    <message>
        <source>e.g. 雪碧 500ml</source>
        <translation>例如：雪碧 500ml</translation>
    </message>
    <message>
        <source>e.g. 6901234567892 or SPRITE-500</source>
        <translation>例如：6901234567892 或 SPRITE-500</translation>
    </message>
    <message>
        <source>EAN-13 / UPC</source>
        <translation>EAN-13 / UPC</translation>
    </message>
    <message>
        <source>Capture view</source>
        <translation>拍摄一张</translation>
    </message>
    <message>
        <source>Remove last view</source>
        <translation>删除上一张</translation>
    </message>
    <message>
        <source>Remove view %1</source>
        <translation>删除第 %1 张</translation>
    </message>
    <message>
        <source>Save product</source>
        <translation>保存商品</translation>
    </message>
    <message>
        <source>Start over</source>
        <translation>重新开始</translation>
    </message>
    <message>
        <source>1. Place the new item alone on the tray, then press Capture view.</source>
        <translation>1. 将新商品单独放在托盘上，然后按“拍摄一张”。</translation>
    </message>
    <message>
        <source>2. Turn the item over, then capture again.</source>
        <translation>2. 把商品翻个面，再拍一张。</translation>
    </message>
    <message>
        <source>3. Rotate it or show another side, and capture once more.</source>
        <translation>3. 转动商品或换一个侧面，再拍一张。</translation>
    </message>
    <message>
        <source>Enough views. More sides help recognition; fill in the form and press Save product.</source>
        <translation>图片已足够。多拍几个角度有助于识别；填写表格后按“保存商品”。</translation>
    </message>
    <message>
        <source>Views captured: %1 (at least %2)</source>
        <translation>已拍摄：%1 张（至少 %2 张）</translation>
    </message>
    <message>
        <source>Saving and learning the product…</source>
        <translation>正在保存并学习商品…</translation>
    </message>
    <message>
        <source>Saved: %1 is recognised from now on.</source>
        <translation>已保存：从现在起可识别 %1。</translation>
    </message>
    <message>
        <source>Not saved: %1</source>
        <translation>未保存：%1</translation>
    </message>
    <message>
        <source>This looks like a product already in the catalogue: please confirm.</source>
        <translation>这件商品看起来和目录中已有的商品很像：请确认。</translation>
    </message>
    <message>
        <source>Cancelled: nothing was saved.</source>
        <translation>已取消：没有保存任何内容。</translation>
    </message>
    <message>
        <source>No camera picture yet.</source>
        <translation>还没有摄像头画面。</translation>
    </message>
    <message>
        <source>No item found on the tray: place the item alone on the tray.</source>
        <translation>托盘上没有找到商品：请将商品单独放在托盘上。</translation>
    </message>
    <message>
        <source>%1 items on the tray: put only this product on the tray, then capture again.</source>
        <translation>托盘上有 %1 件商品：只把这一件商品放在托盘上，然后重新拍摄。</translation>
    </message>
    <message>
        <source>view %1: no item on the tray</source>
        <translation>第 %1 张：托盘上没有商品</translation>
    </message>
    <message>
        <source>view %1 does not look like the other views (another product?): remove it and capture this product again</source>
        <translation>第 %1 张和其他几张看起来不像（是另一件商品？）：请删除它，再拍摄这件商品</translation>
    </message>
    <message>
        <source>view %1: %2 items on the tray, put only this product on the tray</source>
        <translation>第 %1 张：托盘上有 %2 件商品，只把这一件商品放在托盘上</translation>
    </message>
    <message>
        <source>capture at least %1 views</source>
        <translation>请至少拍摄 %1 张</translation>
    </message>
</context>
<context>
    <name>LearnedTab</name>
    <message>
        <source>Show</source>
        <translation>显示</translation>
    </message>
    <message>
        <source>Waiting for approval</source>
        <translation>待审核</translation>
    </message>
    <message>
        <source>In the gallery</source>
        <translation>已在图库中</translation>
    </message>
    <message>
        <source>Undone</source>
        <translation>已撤销</translation>
    </message>
    <message>
        <source>All</source>
        <translation>全部</translation>
    </message>
    <message>
        <source>Picture</source>
        <translation>图片</translation>
    </message>
    <message>
        <source>Product</source>
        <translation>商品</translation>
    </message>
    <message>
        <source>Source</source>
        <translation>来源</translation>
    </message>
    <message>
        <source>Cashier</source>
        <translation>收银员</translation>
    </message>
    <message>
        <source>Time</source>
        <translation>时间</translation>
    </message>
    <message>
        <source>Status</source>
        <translation>状态</translation>
    </message>
    <message>
        <source>Recognised as</source>
        <translation>原识别为</translation>
    </message>
    <message>
        <source>Approve</source>
        <translation>批准</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>撤销</translation>
    </message>
    <message>
        <source>Delete for good</source>
        <translation>永久删除</translation>
    </message>
    <message>
        <source>cashier</source>
        <translation>收银员</translation>
    </message>
    <message>
        <source>shopper's choice</source>
        <translation>顾客选择</translation>
    </message>
    <message>
        <source>barcode</source>
        <translation>条码</translation>
    </message>
    <message>
        <source>paid item</source>
        <translation>已付款商品</translation>
    </message>
    <message>
        <source>waiting for approval</source>
        <translation>待审核</translation>
    </message>
    <message>
        <source>in the gallery</source>
        <translation>已在图库中</translation>
    </message>
    <message>
        <source>undone</source>
        <translation>已撤销</translation>
    </message>
    <message>
        <source>dropped (view budget)</source>
        <translation>已舍弃（视图上限）</translation>
    </message>
    <message>
        <source>deleted</source>
        <translation>已删除</translation>
    </message>
    <message>
        <source>Views the kiosk learned from the cashier's answers, from its own camera. Undo takes a view out of the gallery at once.</source>
        <translation>自助机根据收银员的回答、用自己的摄像头学到的视图。撤销会立即将视图移出图库。</translation>
    </message>
    <message>
        <source>View %1 approved: it is recognised from now on.</source>
        <translation>视图 %1 已批准：从现在起用于识别。</translation>
    </message>
    <message>
        <source>View %1 undone: it is no longer used for recognition.</source>
        <translation>视图 %1 已撤销：不再用于识别。</translation>
    </message>
    <message>
        <source>View %1 deleted for good.</source>
        <translation>视图 %1 已永久删除。</translation>
    </message>
    <message>
        <source>Not changed: %1</source>
        <translation>未修改：%1</translation>
    </message>
    <message>
        <source>unknown</source>
        <translation>未知</translation>
    </message>
</context>
<context>
    <name>LookalikeDialog</name>
    <message>
        <source>Is this a new product?</source>
        <translation>这是新商品吗？</translation>
    </message>
    <message>
        <source>This looks like a product already in the catalogue</source>
        <translation>这件商品看起来和目录中已有的商品很像</translation>
    </message>
    <message>
        <source>Compare the pictures. Save only if it really is a different product (another flavour or size); otherwise cancel and change the existing product instead.</source>
        <translation>请对比图片。只有确实是不同的商品（其他口味或规格）时才保存；否则请取消，并修改已有的商品。</translation>
    </message>
    <message>
        <source>New product: %1</source>
        <translation>新商品：%1</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>未定价</translation>
    </message>
    <message>
        <source>Already in the catalogue: %1 (SKU %2), %3, match %4 %</source>
        <translation>目录中已有：%1（货号 %2），%3，相似度 %4 %</translation>
    </message>
    <message>
        <source>It is a different product, save</source>
        <translation>是不同的商品，保存</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Self-checkout</source>
        <translation>自助结账</translation>
    </message>
    <message>
        <source>Staff</source>
        <translation>员工</translation>
    </message>
    <message>
        <source>Call the cashier</source>
        <translation>呼叫收银员</translation>
    </message>
    <message>
        <source>End cashier session</source>
        <translation>结束收银员操作</translation>
    </message>
    <message>
        <source>Starting the camera…</source>
        <translation>正在启动摄像头…</translation>
    </message>
    <message>
        <source>The cashier has been called and is on the way. Please wait.</source>
        <translation>已呼叫收银员，正在赶来，请稍候。</translation>
    </message>
    <message>
        <source>The camera picture is not live: the receipt will be checked again when it is.</source>
        <translation>摄像头画面不是实时的：画面恢复后将重新核对小票。</translation>
    </message>
    <message>
        <source>Place your items on the tray, apart from each other.</source>
        <translation>请将商品分开平放在托盘上。</translation>
    </message>
    <message>
        <source>An item needs the cashier: please call the cashier.</source>
        <translation>有商品需要收银员处理：请呼叫收银员。</translation>
    </message>
    <message>
        <source>Checking the tray… keep it still for a moment.</source>
        <translation>正在核对托盘上的商品……请保持不动片刻。</translation>
    </message>
    <message>
        <source>Recognition is having a problem: please call the cashier if it persists.</source>
        <translation>识别遇到问题：如果一直这样，请呼叫收银员。</translation>
    </message>
    <message>
        <source>The camera picture is not live: wait until the tray has been checked again.</source>
        <translation>摄像头画面不是实时的：请等托盘重新核对后再付款。</translation>
    </message>
    <message>
        <source>The tray is still being checked: keep it still for a moment.</source>
        <translation>托盘还在核对中：请保持不动片刻。</translation>
    </message>
    <message>
        <source>The basket is empty: nothing to pay for.</source>
        <translation>购物篮是空的：没有需要付款的商品。</translation>
    </message>
    <message>
        <source>An item needs the cashier before payment: please call the cashier.</source>
        <translation>付款前有商品需要收银员处理：请呼叫收银员。</translation>
    </message>
    <message>
        <source>The sale cannot be finished yet: please call the cashier.</source>
        <translation>暂时无法结账：请呼叫收银员。</translation>
    </message>
    <message>
        <source>Check your items, then press Finish and pay.</source>
        <translation>请核对商品，然后按“结账”。</translation>
    </message>
    <message>
        <source>Cashier %1 (%2) is acting on this kiosk – %3 s left</source>
        <translation>收银员 %1（%2）正在本机操作——还剩 %3 秒</translation>
    </message>
    <message>
        <source>Camera disconnected – reconnecting…</source>
        <translation>摄像头已断开，正在重新连接…</translation>
    </message>
    <message>
        <source>No usable picture from the camera – reconnecting…</source>
        <translation>摄像头没有可用的画面，正在重新连接…</translation>
    </message>
    <message>
        <source>The camera picture is not changing – please check the camera.</source>
        <translation>摄像头画面没有变化，请检查摄像头。</translation>
    </message>
    <message>
        <source>Cannot finish yet</source>
        <translation>暂时无法结账</translation>
    </message>
    <message>
        <source>Staff mode is not set up.</source>
        <translation>员工模式尚未设置。</translation>
    </message>
</context>
<context>
    <name>PinDialog</name>
    <message>
        <source>Staff</source>
        <translation>员工</translation>
    </message>
    <message>
        <source>No staff PIN yet</source>
        <translation>尚未设置员工密码</translation>
    </message>
    <message>
        <source>Create a staff PIN</source>
        <translation>设置员工密码</translation>
    </message>
    <message>
        <source>Enter the new PIN again</source>
        <translation>请再次输入新密码</translation>
    </message>
    <message>
        <source>Enter the staff PIN</source>
        <translation>请输入员工密码</translation>
    </message>
    <message>
        <source>Clear</source>
        <translation>清除</translation>
    </message>
    <message>
        <source>OK</source>
        <translation>确定</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>A technician sets the staff PIN on the kiosk PC with the command:</source>
        <translation>请技术人员在自助收银机电脑上用以下命令设置员工密码：</translation>
    </message>
    <message>
        <source>Wrong PIN, try again.</source>
        <translation>密码错误，请重试。</translation>
    </message>
    <message>
        <source>The PIN needs at least %1 digits.</source>
        <translation>密码至少需要 %1 位数字。</translation>
    </message>
    <message>
        <source>The two PINs differ: start again.</source>
        <translation>两次输入的密码不一致：请重新开始。</translation>
    </message>
    <message>
        <source>Too many wrong PINs: locked for %1 s.</source>
        <translation>密码错误次数过多：已锁定，%1 秒后可重试。</translation>
    </message>
    <message>
        <source>First use: choose a PIN of %1 to %2 digits.</source>
        <translation>首次使用：请设置 %1 到 %2 位数字的密码。</translation>
    </message>
</context>
<context>
    <name>ReceiptDialog</name>
    <message>
        <source>Receipt</source>
        <translation>小票</translation>
    </message>
    <message>
        <source>Print</source>
        <translation>打印</translation>
    </message>
    <message>
        <source>Save as PDF</source>
        <translation>保存为 PDF</translation>
    </message>
    <message>
        <source>New checkout</source>
        <translation>开始新的结账</translation>
    </message>
    <message>
        <source>Self-checkout</source>
        <translation>自助结账</translation>
    </message>
    <message>
        <source>Receipt no. %1</source>
        <translation>小票号：%1</translation>
    </message>
    <message>
        <source>Item</source>
        <translation>商品</translation>
    </message>
    <message>
        <source>Qty</source>
        <translation>数量</translation>
    </message>
    <message>
        <source>Unit price</source>
        <translation>单价</translation>
    </message>
    <message>
        <source>Amount</source>
        <translation>金额</translation>
    </message>
    <message>
        <source>Total</source>
        <translation>合计</translation>
    </message>
    <message>
        <source>Thank you for shopping with us!</source>
        <translation>谢谢惠顾！</translation>
    </message>
    <message>
        <source>Save receipt as PDF</source>
        <translation>将小票保存为 PDF</translation>
    </message>
    <message>
        <source>Could not save the PDF</source>
        <translation>无法保存 PDF</translation>
    </message>
</context>
<context>
    <name>ReceiptPanel</name>
    <message>
        <source>Your items</source>
        <translation>您的商品</translation>
    </message>
    <message>
        <source>Item</source>
        <translation>商品</translation>
    </message>
    <message>
        <source>Qty</source>
        <translation>数量</translation>
    </message>
    <message>
        <source>Unit price</source>
        <translation>单价</translation>
    </message>
    <message>
        <source>Amount</source>
        <translation>金额</translation>
    </message>
    <message>
        <source>Total</source>
        <translation>合计</translation>
    </message>
    <message>
        <source>Finish and pay</source>
        <translation>结账</translation>
    </message>
    <message>
        <source>Picture not live – these items will be checked again before you can pay.</source>
        <translation>画面不是实时的——付款前将重新核对这些商品。</translation>
    </message>
    <message>
        <source>Some items need the cashier: please call the cashier.</source>
        <translation>有商品需要收银员处理：请呼叫收银员。</translation>
    </message>
    <message>
        <source>Items: %1</source>
        <translation>件数：%1</translation>
    </message>
    <message>
        <source>no price</source>
        <translation>未定价</translation>
    </message>
</context>
<context>
    <name>StaffPage</name>
    <message>
        <source>Staff mode</source>
        <translation>员工模式</translation>
    </message>
    <message>
        <source>Back to checkout</source>
        <translation>返回结账</translation>
    </message>
    <message>
        <source>Enrol new product</source>
        <translation>录入新商品</translation>
    </message>
    <message>
        <source>Catalogue</source>
        <translation>商品目录</translation>
    </message>
    <message>
        <source>Tray</source>
        <translation>托盘</translation>
    </message>
    <message>
        <source>Camera</source>
        <translation>摄像头</translation>
    </message>
    <message>
        <source>Cashiers</source>
        <translation>收银员</translation>
    </message>
    <message>
        <source>Audit log &amp; backup</source>
        <translation>审计记录与备份</translation>
    </message>
    <message>
        <source>Learned views</source>
        <translation>学到的视图</translation>
    </message>
</context>
<context>
    <name>StartingScreen</name>
    <message>
        <source>Self-checkout</source>
        <translation>自助结账</translation>
    </message>
    <message>
        <source>Starting: loading the product recognition…</source>
        <translation>正在启动：加载商品识别…</translation>
    </message>
    <message>
        <source>Starting the product recognition model…</source>
        <translation>正在启动商品识别模型…</translation>
    </message>
    <message>
        <source>Building the demo catalogue: picture %1 of %2 — %3</source>
        <translation>正在建立演示商品目录：第 %1 张图片，共 %2 张 — %3</translation>
    </message>
    <message>
        <source>Learning the catalogue's pictures: %1 of %2 — %3</source>
        <translation>正在学习商品目录的图片：第 %1 张，共 %2 张 — %3</translation>
    </message>
    <message>
        <source>Reading the text on the packs: %1 of %2 — %3</source>
        <translation>正在读取包装上的文字：第 %1 张，共 %2 张 — %3</translation>
    </message>
    <message>
        <source>Building the search index: %1 of %2 — %3</source>
        <translation>正在建立检索索引：%1 / %2 — %3</translation>
    </message>
    <message>
        <source>estimating…</source>
        <translation>正在估算剩余时间…</translation>
    </message>
    <message>
        <source>almost done</source>
        <translation>即将完成</translation>
    </message>
    <message>
        <source>about %1 s left</source>
        <translation>约剩 %1 秒</translation>
    </message>
    <message>
        <source>about %1 min left</source>
        <translation>约剩 %1 分钟</translation>
    </message>
    <message>
        <source>Could not start: %1</source>
        <translation>无法启动：%1</translation>
    </message>
    <message>
        <source>Quit</source>
        <translation>退出</translation>
    </message>
</context>
<context>
    <name>StoreSync</name>
    <message>
        <source>Price changed by the store: %1. This basket keeps its prices; the new price applies to the next customer.</source>
        <translation>商店已调整价格：%1。本单仍按原价结算，新价格从下一位顾客起生效。</translation>
    </message>
    <message>
        <source>Price changed by the store: %1. The basket shows the new price.</source>
        <translation>商店已调整价格：%1。购物清单已按新价格显示。</translation>
    </message>
</context>
<context>
    <name>StoreTab</name>
    <message>
        <source>Store</source>
        <translation>门店</translation>
    </message>
    <message>
        <source>Shopper asked for help</source>
        <translation>顾客请求帮助</translation>
    </message>
    <message>
        <source>Unknown item</source>
        <translation>无法识别的商品</translation>
    </message>
    <message>
        <source>Unsure between products</source>
        <translation>无法确定是哪件商品</translation>
    </message>
    <message>
        <source>Item without a price</source>
        <translation>商品未定价</translation>
    </message>
    <message>
        <source>Camera problem</source>
        <translation>摄像头故障</translation>
    </message>
    <message>
        <source>Printer problem</source>
        <translation>打印机故障</translation>
    </message>
    <message>
        <source>Kiosks of the store</source>
        <translation>本店的自助收银机</translation>
    </message>
    <message>
        <source>Calls for the cashier on every kiosk</source>
        <translation>各收银机的呼叫</translation>
    </message>
    <message>
        <source>Kiosk</source>
        <translation>收银机</translation>
    </message>
    <message>
        <source>Last contact</source>
        <translation>最近联系</translation>
    </message>
    <message>
        <source>Changes behind</source>
        <translation>未同步的更改</translation>
    </message>
    <message>
        <source>Sync lag</source>
        <translation>同步延迟</translation>
    </message>
    <message>
        <source>Outbox</source>
        <translation>待发送</translation>
    </message>
    <message>
        <source>Reason</source>
        <translation>原因</translation>
    </message>
    <message>
        <source>Waiting</source>
        <translation>等待时间</translation>
    </message>
    <message>
        <source>Close call</source>
        <translation>关闭呼叫</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>刷新</translation>
    </message>
    <message>
        <source>connected</source>
        <translation>已连接</translation>
    </message>
    <message>
        <source>not connected (%1): selling goes on, changes wait in the outbox</source>
        <translation>未连接（%1）：可继续销售，更改暂存待发送</translation>
    </message>
    <message>
        <source>This kiosk: %1 – server %2, %3; changes waiting to be sent: %4</source>
        <translation>本机：%1 – 服务器 %2，%3；待发送的更改：%4</translation>
    </message>
    <message>
        <source>Kiosks of the store (server not reachable: %1)</source>
        <translation>本店的自助收银机（无法连接服务器：%1）</translation>
    </message>
</context>
<context>
    <name>TouchKeyboard</name>
    <message>
        <source>Space</source>
        <translation>空格</translation>
    </message>
</context>
<context>
    <name>TrayTab</name>
    <message>
        <source>Take everything off the tray, keep hands away, then press Recalibrate. The kiosk learns the empty tray and finds items by how they differ from it.</source>
        <translation>请清空托盘，手离开托盘，然后按“重新校准”。系统会记住空托盘的样子，并据此找出托盘上的商品。</translation>
    </message>
    <message>
        <source>Recalibrate the empty tray</source>
        <translation>重新校准空托盘</translation>
    </message>
    <message>
        <source>Calibrated. Saved to %1</source>
        <translation>校准完成，已保存到 %1</translation>
    </message>
    <message>
        <source>Not calibrated: %1</source>
        <translation>未校准：%1</translation>
    </message>
    <message>
        <source>No camera picture yet.</source>
        <translation>还没有摄像头画面。</translation>
    </message>
    <message>
        <source>This detector needs no calibration.</source>
        <translation>此检测器无需校准。</translation>
    </message>
    <message>
        <source>Not calibrated yet.</source>
        <translation>尚未校准。</translation>
    </message>
</context>
<context>
    <name>TrayView</name>
    <message>
        <source>Please call the cashier</source>
        <translation>请呼叫收银员</translation>
    </message>
    <message>
        <source>Not recognised</source>
        <translation>无法识别</translation>
    </message>
    <message>
        <source>No price: call the cashier</source>
        <translation>未定价：请呼叫收银员</translation>
    </message>
    <message>
        <source>Not sure: call the cashier</source>
        <translation>不确定：请呼叫收银员</translation>
    </message>
    <message>
        <source>(barcode)</source>
        <translation>（条码）</translation>
    </message>
    <message>
        <source>(cashier)</source>
        <translation>（收银员）</translation>
    </message>
    <message>
        <source>(your choice)</source>
        <translation>（您的选择）</translation>
    </message>
</context>
</TS>